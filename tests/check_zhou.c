/*
 * check_zhou.c: the published split files (datasets/zhou.c, zhou:FILE.json)
 * and the shipped dataset metadata (datasets/meta.c, data.classnames), on
 * small generated files.
 *
 *   splits      train / val / test of one file: counts, labels, names
 *               ('_' as ' '), images found in a sub-folder, loaded
 *   beside      images beside the split file
 *   hostile     every malformed form named, with the exit status 2
 *   val_specs   ":val" of a reader without one refused, in specs and keys
 *   meta        names.tsv lookups, names and templates applied, a count or
 *               an order that does not match refused, auto and unknown sets
 *   shipped     the 22 sets: the files parse, templates hold one {}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/meta.h"
#include "experiments/config.h"
#include "experiments/plan_list.h"
#include "dataset_files.h"
#include "suites.h"
#include "test_util.h"

/* a split file at tp(rel) with images under tp(img_dir) */
static const char split_json[] =
    "{\"train\": [[\"a_b/1.png\", 0, \"a_b\"], [\"c/2.png\", 1, \"c\"], [\"a_b/3.png\", 0, \"a_b\"],"
    "             [\"d/4.png\", 2, \"d\"]],"
    " \"val\":   [[\"c/5.png\", 1, \"c\"]],"
    " \"test\":  [[\"d/6.png\", 2, \"d\"], [\"a_b/7.png\", 0, \"a_b\"]]}";

static void write_images(const char *where)
{
    char root[512];

    static const char *const files[] = { "a_b/1.png", "c/2.png", "a_b/3.png", "d/4.png",
                                         "c/5.png", "d/6.png", "a_b/7.png" };
    static const char *const dirs[] = { "a_b", "c", "d" };

    snprintf(root, sizeof(root), "%s", where);     /* test_path's buffers rotate */
    ds_mkdir(root);
    for (size_t i = 0; i < 3; i++)
        ds_mkdir(test_path(root, "%s", dirs[i]));
    for (size_t i = 0; i < 7; i++)
        ds_write_png(test_path(root, "%s", files[i]), 5, 6, (int)i);
}

START_TEST(test_splits)
{
    struct dataset ds;
    struct ds_image img = { 0 };
    char spec[512];
    int label;
    static const int want_train[4] = { 0, 1, 0, 2 };

    ds_mkdir(tp("aaa_empty"));              /* sorted before images/: skipped */
    write_images(tp("images"));
    test_write_text(tp("split_zhou_Toy.json"), split_json);
    snprintf(spec, sizeof(spec), "zhou:%s", tp("split_zhou_Toy.json"));
    ck_assert_msg(dataset_open(&ds, spec) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(ds.n, 4);
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[0], "a b");
    ck_assert_str_eq(ds.class_names[2], "d");
    ck_assert_int_eq(ds.n_templates, 0);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(dataset_load(&ds, i, &img, &label) == RL_OK, "%s", rl_error_msg());
        ck_assert_int_eq(label, want_train[i]);
        ck_assert_int_eq(dataset_label(&ds, i), want_train[i]);
        ck_assert(img.channels == 3 && img.height == 5 && img.width == 6);
    }
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "zhou:%s:val", tp("split_zhou_Toy.json"));
    ck_assert_msg(dataset_open(&ds, spec) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(ds.n, 1);
    ck_assert_int_eq(ds.n_classes, 3);          /* the classes of every list */
    ck_assert_int_eq(dataset_label(&ds, 0), 1);
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "zhou:%s:test", tp("split_zhou_Toy.json"));
    ck_assert_msg(dataset_open(&ds, spec) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(ds.n, 2);
    ck_assert_msg(dataset_load(&ds, 1, &img, &label) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(label, 0);
    dataset_close(&ds);
    ds_image_free(&img);
}
END_TEST

START_TEST(test_beside)
{
    struct dataset ds;
    struct ds_image img = { 0 };
    char spec[512];
    int label;

    write_images(tp("toy"));
    test_write_text(tp("toy/split_zhou_Toy.json"), split_json);
    snprintf(spec, sizeof(spec), "zhou:%s", tp("toy/split_zhou_Toy.json"));
    ck_assert_msg(dataset_open(&ds, spec) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(dataset_load(&ds, 3, &img, &label) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(label, 2);
    dataset_close(&ds);
    /* an image missing later: its load names it */
    remove(tp("toy/c/2.png"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_int_ne(dataset_load(&ds, 1, &img, &label), RL_OK);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "c/2.png"));
    dataset_close(&ds);
    ds_image_free(&img);
}
END_TEST

/* the file holding text fails to open with status and a message holding needle */
static void refused(const char *text, int status, const char *needle)
{
    struct dataset ds;
    char spec[512];

    test_write_text(tp("split_zhou_Bad.json"), text);
    snprintf(spec, sizeof(spec), "zhou:%s", tp("split_zhou_Bad.json"));
    ck_fails_with(dataset_open(&ds, spec), status, needle);
    ck_assert_int_eq(rl_exit_code(status), 2);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "split_zhou_Bad.json"));
}

START_TEST(test_hostile)
{
    struct dataset ds;
    char spec[512];

    refused("{\"train\": [", RL_ERR_FORMAT, "not valid JSON");
    refused("[1, 2]", RL_ERR_FORMAT, "expected a JSON object");
    refused("{\"val\": []}", RL_ERR_FORMAT, "no \"train\" list");
    refused("{\"train\": []}", RL_ERR_FORMAT, "no \"train\" list");
    refused("{\"train\": [[\"x.png\", 0]]}", RL_ERR_FORMAT,
            "\"train\" item 1: expected [path, label, classname]");
    refused("{\"train\": [\"x.png\"]}", RL_ERR_FORMAT, "item 1: expected [path, label, classname]");
    refused("{\"train\": [[\"x.png\", -1, \"a\"]]}", RL_ERR_FORMAT,
            "\"train\" item 1 ('x.png'): expected a label, a whole number in [0, 100000)");
    refused("{\"train\": [[\"x.png\", 0.5, \"a\"]]}", RL_ERR_FORMAT, "expected a label");
    refused("{\"train\": [[\"x.png\", 1e300, \"a\"]]}", RL_ERR_FORMAT, "expected a label");
    refused("{\"train\": [[\"x.png\", \"0\", \"a\"]]}", RL_ERR_FORMAT, "expected a label");
    refused("{\"train\": [[\"/etc/x.png\", 0, \"a\"]]}", RL_ERR_FORMAT,
            "expected a relative image path");
    refused("{\"train\": [[\"\", 0, \"a\"]]}", RL_ERR_FORMAT, "expected a relative image path");
    refused("{\"train\": [[\"x.png\", 0, \"\"]]}", RL_ERR_FORMAT, "expected the class name");
    refused("{\"train\": [[\"x.png\", 0, 7]]}", RL_ERR_FORMAT, "expected the class name");
    refused("{\"train\": [[\"x.png\", 0, \"a\"]], \"test\": [[\"y.png\", 0, \"b\"]]}",
            RL_ERR_FORMAT, "\"test\" item 1 ('y.png'): label 0 is 'b' here and 'a' before");
    refused("{\"train\": [[\"x.png\", 0, \"a\"], [\"y.png\", 2, \"c\"]]}", RL_ERR_FORMAT,
            "label 1 has no item (the labels must be 0 to 2, each with a class name)");
    refused("{\"train\": [[\"x.png\", 0, \"a\"]], \"val\": 3}", RL_ERR_FORMAT,
            "\"val\" is not a list");
    refused("{\"train\": [[\"x.png\", 0, \"a\"]]}", RL_ERR_IO,
            "its first image 'x.png' is neither in");
    snprintf(spec, sizeof(spec), "zhou:%s", tp("none.json"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "cannot open");
    ck_fails_with(dataset_open(&ds, "zhou:"), RL_ERR_ARG, "empty directory");
}
END_TEST

START_TEST(test_val_specs)
{
    struct dataset ds;
    struct experiment e;

    ck_fails_with(dataset_open(&ds, "idx:/nowhere:val"), RL_ERR_ARG,
                  "'idx' has no :val split");
    ck_fails_with(dataset_open(&ds, "shapes:val"), RL_ERR_ARG, "'shapes' has no :val split");
    ck_assert_int_eq(experiment_parse(&e, "[data]\ndataset = cifar10:/d:val\n", "t.ini", NULL,
                                      0), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini:2: data.dataset = 'cifar10:/d:val': item "
                     "'cifar10:/d:val': dataset 'cifar10' has no :val split (only :train and "
                     ":test; folder and zhou have :val)");
    ck_assert_int_eq(experiment_parse(&e, "[data]\ndataset = cifar10:/d\nval = cifar10:/d:val\n",
                                      "t.ini", NULL, 0), RL_ERR_ARG);
    ck_assert_int_eq(experiment_parse(&e, "[data]\ndataset = zhou:/d/split_zhou_X.json\n"
                                      "val = zhou:/d/split_zhou_X.json:val\n", "t.ini", NULL, 0),
                     RL_OK);
    ck_assert_int_eq(e.val.kind, EXP_VAL_SPEC);
    ck_assert_str_eq(e.evals[0], "zhou:/d/split_zhou_X.json:test");
    experiment_free(&e);
    /* the val list is neither the training nor the test set */
    ck_assert_int_eq(experiment_parse(&e, "[data]\ndataset = folder:/d\nval = folder:/d:val\n",
                                      "t.ini", NULL, 0), RL_OK);
    experiment_free(&e);
}
END_TEST

/* a dataset of n classes with these names, opened from a split file */
static void open_named(struct dataset *ds, const char *const *names, int n)
{
    char *text = malloc(65536), spec[512];
    size_t off = 0;

    ck_assert_ptr_nonnull(text);
    off += (size_t)snprintf(text + off, 65536 - off, "{\"train\": [");
    for (int c = 0; c < n; c++)
        off += (size_t)snprintf(text + off, 65536 - off, "%s[\"i.png\", %d, \"%s\"]",
                                c ? ", " : "", c, names[c]);
    snprintf(text + off, 65536 - off, "]}");
    ds_write_png(tp("i.png"), 2, 2, 1);
    test_write_text(tp("split_zhou_N.json"), text);
    snprintf(spec, sizeof(spec), "zhou:%s", tp("split_zhou_N.json"));
    ck_assert_msg(dataset_open(ds, spec) == RL_OK, "%s", rl_error_msg());
    free(text);
}

START_TEST(test_meta)
{
    static const char *const digits[10] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
    static const char *const cifar_rev[10] = { "truck", "ship", "horse", "frog", "dog", "deer",
                                               "cat", "bird", "automobile", "airplane" };
    static const char *const mine[10] = { "plane", "car", "bird", "cat", "deer", "dog", "frog",
                                          "horse", "ship", "lorry" };
    struct dataset ds;
    char set[64];

    ck_assert_int_eq(ds_meta_lookup("DescribableTextures", set, sizeof(set)), RL_OK);
    ck_assert_str_eq(set, "dtd");
    ck_assert_int_eq(ds_meta_lookup("oxford_pets", set, sizeof(set)), RL_OK);
    ck_assert_str_eq(set, "oxfordpets");
    ck_assert_int_eq(ds_meta_lookup("SUN397", set, sizeof(set)), RL_OK);
    ck_assert_str_eq(set, "sun397");
    ck_assert_int_eq(ds_meta_lookup("my-data", set, sizeof(set)), RL_ERR_NA);

    /* svhn: the authors' digits and their one template */
    open_named(&ds, digits, 10);
    ck_assert_int_eq(ds_meta_select(&ds, "auto", "my-digits"), RL_OK);   /* no set: as it was */
    ck_assert_int_eq(ds.n_templates, 0);
    ck_assert_int_eq(ds_meta_select(&ds, "SVHN", "my-digits"), RL_OK);
    ck_assert_int_eq(ds.n_templates, 1);
    ck_assert_str_eq(ds.templates[0], "a photo of the number: \"{}\".");
    ck_assert_str_eq(ds.class_names[9], "9");
    dataset_close(&ds);

    /* cifar10 by auto-detection: other names replaced by label */
    open_named(&ds, mine, 10);
    ck_assert_int_eq(ds_meta_select(&ds, "auto", "CIFAR-10"), RL_OK);
    ck_assert_str_eq(ds.class_names[0], "airplane");
    ck_assert_str_eq(ds.class_names[9], "truck");
    ck_assert_int_eq(ds.n_templates, 18);
    dataset_close(&ds);

    /* the same names in another order: refused */
    open_named(&ds, cifar_rev, 10);
    ck_fails_with(ds_meta_select(&ds, "cifar10", "x"), RL_ERR_ARG,
                  "the dataset's classes are the set's in another order ('truck' is label 0 "
                  "here, 9 in the set)");
    dataset_close(&ds);
    /* one name moved among others the set does not have: refused too */
    {
        static const char *const one_moved[10] = { "a", "b", "c", "d", "e", "f", "g", "h",
                                                   "Automobile", "j" };

        open_named(&ds, one_moved, 10);
        ck_fails_with(ds_meta_select(&ds, "cifar10", "x"), RL_ERR_ARG,
                      "('Automobile' is label 8 here, 1 in the set)");
        dataset_close(&ds);
    }

    /* class folders named by number, sorted as text: refused */
    {
        static const char *const text_order[10] = { "1", "10", "2", "3", "4", "5", "6", "7",
                                                    "8", "9" };

        open_named(&ds, text_order, 10);
        ck_fails_with(ds_meta_select(&ds, "mnist", "x"), RL_ERR_ARG,
                      "the dataset's classes are numbers out of order ('1' is label 0, '10' "
                      "label 1");
        dataset_close(&ds);
    }

    /* counts, unknown sets */
    open_named(&ds, digits, 3);
    ck_fails_with(ds_meta_select(&ds, "cifar10", "x"), RL_ERR_ARG,
                  "data.classnames = cifar10: the set names 10 classes, the dataset has 3");
    ck_fails_with(ds_meta_select(&ds, "auto", "cifar10"), RL_ERR_ARG, "names 10 classes");
    ck_fails_with(ds_meta_select(&ds, "nosuch", "x"), RL_ERR_ARG,
                  "data.classnames = nosuch: no such metadata set in datasets/meta (known: cars, "
                  "cifar10, cifar100, dtd,");
    ck_assert_int_eq(ds_meta_select(&ds, "dataset", "cifar10"), RL_OK);
    ck_assert_str_eq(ds.class_names[2], "2");
    /* templates only (no class list shipped): the names stay */
    ck_assert_int_eq(ds_meta_select(&ds, "cub200", "x"), RL_OK);
    ck_assert_str_eq(ds.class_names[2], "2");
    ck_assert_int_eq(ds.n_templates, 1);
    dataset_close(&ds);
}
END_TEST

/* the dry run opens the data with the plan's data.classnames: a set that
 * does not fit is refused before anything runs */
START_TEST(test_dry_run)
{
    static const char *const digits[10] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
    struct dataset ds;
    struct experiment e;
    struct run_plan *p;
    size_t n, n_train[1];
    char text[1024];

    open_named(&ds, digits, 10);
    dataset_close(&ds);
    snprintf(text, sizeof(text), "[data]\ndataset = zhou:%s\neval = zhou:%s\n"
             "classnames = %%s\n", tp("split_zhou_N.json"), tp("split_zhou_N.json"));
    {
        char t2[1200];

        snprintf(t2, sizeof(t2), text, "cifar10");
        ck_assert_int_eq(experiment_parse(&e, t2, "t.ini", NULL, 0), RL_OK);
        ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
        ck_assert_msg(plan_list_check_data(p, n, n_train) == RL_OK, "%s", rl_error_msg());
        ck_assert_uint_eq(n_train[0], 10);
        run_plans_free(p, n);
        experiment_free(&e);
        snprintf(t2, sizeof(t2), text, "cifar100");
        ck_assert_int_eq(experiment_parse(&e, t2, "t.ini", NULL, 0), RL_OK);
        ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
        ck_fails_with(plan_list_check_data(p, n, n_train), RL_ERR_ARG,
                      "run lora-r8-f1-seed1: ");
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "the set names 100 classes, the dataset "
                                     "has 10"));
        run_plans_free(p, n);
        experiment_free(&e);
    }
}
END_TEST

START_TEST(test_shipped)
{
    static const struct { const char *set; int classes, templates; } sets[] = {
        { "cars", 196, 8 },        { "cifar10", 10, 18 },    { "cifar100", 100, 18 },
        { "dtd", 47, 8 },          { "eurosat", 10, 3 },     { "food101", 101, 1 },
        { "gtsrb", 43, 3 },        { "mnist", 10, 1 },       { "imagenet", 1000, 80 },
        { "resisc45", 45, 18 },    { "stl10", 10, 2 },       { "sun397", 397, 2 },
        { "svhn", 10, 1 },         { "caltech256", 0, 34 },  { "caltech101", 102, 34 },
        { "fgvcaircraft", 100, 2 }, { "flowers102", 102, 1 }, { "oxfordpets", 37, 1 },
        { "cub200", 0, 1 },        { "pascalvoc", 20, 1 },   { "country211", 211, 5 },
        { "ucf101", 101, 48 },
    };
    static const char *const few[1] = { "x" };

    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        struct dataset ds;
        char set[64];

        ck_assert_int_eq(ds_meta_lookup(sets[i].set, set, sizeof(set)), RL_OK);
        ck_assert_str_eq(set, sets[i].set);
        if (sets[i].classes) {
            const char **names = calloc((size_t)sets[i].classes, sizeof(*names));
            char (*buf)[16] = calloc((size_t)sets[i].classes, sizeof(*buf));

            for (int c = 0; c < sets[i].classes; c++) {
                snprintf(buf[c], sizeof(buf[c]), "c%d", c);
                names[c] = buf[c];
            }
            open_named(&ds, names, sets[i].classes);
            free(names);
            free(buf);
        } else {
            open_named(&ds, few, 1);
        }
        ck_assert_msg(ds_meta_apply(&ds, set) == RL_OK, "%s: %s", set, rl_error_msg());
        ck_assert_int_eq(ds.n_templates, sets[i].templates);
        if (sets[i].classes)
            ck_assert_str_ne(ds.class_names[0], "c0");
        dataset_close(&ds);
    }
}
END_TEST

Suite *suite_zhou(void)
{
    Suite *s = suite_create("zhou");
    TCase *tc = tcase_create("zhou");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, ds_tmp_setup, ds_tmp_teardown);
    tcase_add_test(tc, test_splits);
    tcase_add_test(tc, test_beside);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_val_specs);
    tcase_add_test(tc, test_meta);
    tcase_add_test(tc, test_dry_run);
    tcase_add_test(tc, test_shipped);
    suite_add_tcase(s, tc);
    return s;
}
