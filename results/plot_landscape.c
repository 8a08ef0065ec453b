/*
 * plot_landscape.c: a landscape file read back (hostile input checked) and
 * drawn: the contour map and the barrier paths (plot_landscape.h).
 */
#include "results/plot_landscape.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot.h"
#include "results/plot_impl.h"

#define TOP_FACTOR 1.2                 /* colour range: 1.2 x the worst solution */
#define N_CONTOURS 12

/* ------------------------------------------------------------------ read */

static hid_t open_file(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (fapl < 0)
        return -1;
    H5Pset_file_locking(fapl, 0, 1);
    f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    /* only HDF5 1.10's format, whose superblock and object headers carry
     * checksums: a damaged header is then HDF5's error, not its crash */
    if (f >= 0) {
        H5F_info2_t info;

        if (H5Fget_info2(f, &info) < 0 || info.super.version < 2) {
            H5Fclose(f);
            f = -1;
        }
    }
    H5Eclear2(H5E_DEFAULT);
    return f;
}

/* close an attribute, its type and its space (each when open) */
static void close_attr(hid_t a, hid_t t, hid_t sp)
{
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
}

/* a root fixed-length string attribute, malloc'd; NULL when missing or not
 * one (variable-length strings live in a global heap, which HDF5 reads
 * without a checksum: the writer never uses them, the reader never trusts
 * one) */
static char *attr_string(hid_t f, const char *name)
{
    hid_t a = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    char *out = NULL;

    if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 && sp >= 0 &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        size_t n = H5Tget_size(t);

        if (n > 0 && n < 65536) {
            out = xcalloc(n + 1, 1);
            if (H5Aread(a, t, out) < 0) {
                free(out);
                out = NULL;
            }
        }
    }
    close_attr(a, t, sp);
    return out;
}

static int attr_double(hid_t f, const char *name, double *v)
{
    hid_t a = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    int ok = t >= 0 && (H5Tget_class(t) == H5T_FLOAT || H5Tget_class(t) == H5T_INTEGER) && sp >= 0 &&
             H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0;

    close_attr(a, t, sp);
    return ok ? 0 : -1;
}

/* a float dataset of exactly `rank` dimensions, each at most max; *data
 * malloc'd as doubles, dims[] its shape */
static int read_doubles(hid_t f, const char *path, const char *name, int rank, size_t max, double **data,
                        size_t dims[2])
{
    hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    hid_t t = d >= 0 ? H5Dget_type(d) : -1, sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t hd[2] = { 0, 0 };
    int rc = RL_OK;

    *data = NULL;
    if (d < 0)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /%s: missing (not a landscape file of this schema)", path, name);
    else if (t < 0 || H5Tget_class(t) != H5T_FLOAT || sp < 0 || H5Sget_simple_extent_ndims(sp) != rank)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /%s: expected a %d-dimensional float dataset", path, name, rank);
    else {
        H5Sget_simple_extent_dims(sp, hd, NULL);
        for (int i = 0; i < rank && rc == RL_OK; i++)
            if (hd[i] < 1 || hd[i] > max)
                rc = rl_error_set(RL_ERR_FORMAT, "%s: /%s: dimension %d is %llu, expected 1..%zu", path, name, i,
                                  (unsigned long long)hd[i], max);
        if (rc == RL_OK) {
            size_t n = (size_t)hd[0] * (rank == 2 ? (size_t)hd[1] : 1);

            *data = xmalloc_array(n, sizeof(double));
            if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
                rc = rl_error_set(RL_ERR_FORMAT, "%s: /%s: cannot read", path, name);
        }
    }
    dims[0] = (size_t)hd[0];
    dims[1] = rank == 2 ? (size_t)hd[1] : 0;
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (d >= 0)
        H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    if (rc) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

bool plot_landscape_is(const char *path)
{
    hid_t f = open_file(path);
    char *kind = f >= 0 ? attr_string(f, "kind") : NULL;
    bool yes = kind && !strcmp(kind, "landscape");

    free(kind);
    if (f >= 0)
        H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    return yes;
}

static int check_axis(const char *path, const char *name, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || (i > 0 && !(v[i] > v[i - 1])))
            return rl_error_set(RL_ERR_FORMAT, "%s: /%s: expected finite, increasing values (entry %zu is %g)", path,
                                name, i, v[i]);
    return RL_OK;
}

/* a fixed-size small vector of n finite values into out */
static int read_fixed(hid_t f, const char *path, const char *name, size_t n, double *out, bool finite)
{
    double *v;
    size_t dims[2];
    int rc = read_doubles(f, path, name, 1, n, &v, dims);

    if (rc == RL_OK && dims[0] != n)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /%s: %zu values, expected %zu", path, name, dims[0], n);
    for (size_t i = 0; rc == RL_OK && i < n; i++) {
        if (finite && !isfinite(v[i]))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: /%s: entry %zu is not finite", path, name, i);
        out[i] = v[i];
    }
    free(v);
    return rc;
}

int plot_landscape_read(const char *path, struct plot_landscape *p)
{
    static const char *const run_attr[LANDSCAPE_RUNS] = { "run_a", "run_b", "run_c" };
    static const char *const label_attr[LANDSCAPE_RUNS] = { "label_a", "label_b", "label_c" };
    hid_t f;
    char *kind;
    size_t dims[2];
    double n_items = 0;
    int rc = RL_OK;

    memset(p, 0, sizeof(*p));
    p->path = xstrdup(path);
    if ((f = open_file(path)) < 0) {
        plot_landscape_free(p);
        return rl_error_set(RL_ERR_FORMAT, "%s: cannot open as an HDF5 file of the 1.10 format (superblock "
                            "version 2 or later, as randlora landscape writes)", path);
    }
    kind = attr_string(f, "kind");
    if (!kind || strcmp(kind, "landscape"))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: root attribute kind is '%s', expected 'landscape'", path,
                          kind ? kind : "(missing)");
    free(kind);
    for (size_t k = 0; k < LANDSCAPE_RUNS && rc == RL_OK; k++) {
        p->run[k] = attr_string(f, run_attr[k]);
        p->label[k] = attr_string(f, label_attr[k]);
        if (!p->run[k] || !p->label[k])
            rc = rl_error_set(RL_ERR_FORMAT, "%s: root attribute %s or %s: missing", path, run_attr[k],
                              label_attr[k]);
    }
    if (rc == RL_OK && !(p->dataset = attr_string(f, "dataset")))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: root attribute dataset: missing", path);
    if (rc == RL_OK && (attr_double(f, "zero_loss", &p->zero_loss) || attr_double(f, "data_ratio", &p->data_ratio) ||
                        attr_double(f, "n_items", &n_items) || !(n_items >= 1 && n_items < 1e15)))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: root attributes zero_loss, data_ratio, n_items: missing or bad", path);
    p->n_items = rc == RL_OK ? (size_t)n_items : 0;
    if (rc == RL_OK && (rc = read_doubles(f, path, "x", 1, LANDSCAPE_MAX_AXIS, &p->x, dims)) == RL_OK)
        p->nx = dims[0];
    if (rc == RL_OK && (rc = read_doubles(f, path, "y", 1, LANDSCAPE_MAX_AXIS, &p->y, dims)) == RL_OK)
        p->ny = dims[0];
    if (rc == RL_OK && !(rc = check_axis(path, "x", p->x, p->nx)))
        rc = check_axis(path, "y", p->y, p->ny);
    if (rc == RL_OK && (rc = read_doubles(f, path, "loss", 2, LANDSCAPE_MAX_AXIS, &p->loss, dims)) == RL_OK &&
        (dims[0] != p->nx || dims[1] != p->ny))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /loss: %zux%zu, expected %zux%zu (x by y)", path, dims[0], dims[1],
                          p->nx, p->ny);
    if (rc == RL_OK)
        rc = read_fixed(f, path, "corner_x", LANDSCAPE_RUNS, p->corner_x, true);
    if (rc == RL_OK)
        rc = read_fixed(f, path, "corner_y", LANDSCAPE_RUNS, p->corner_y, true);
    if (rc == RL_OK)
        rc = read_fixed(f, path, "corner_loss", LANDSCAPE_RUNS, p->corner_loss, false);
    if (rc == RL_OK && H5Lexists(f, "path_t", H5P_DEFAULT) > 0) {
        if ((rc = read_doubles(f, path, "path_t", 1, LANDSCAPE_MAX_PATH, &p->t, dims)) == RL_OK)
            p->n_path = dims[0];
        if (rc == RL_OK && (rc = read_doubles(f, path, "path_loss", 2, LANDSCAPE_MAX_PATH, &p->path_loss, dims)) ==
                               RL_OK &&
            (dims[0] != LANDSCAPE_PAIRS || dims[1] != p->n_path))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: /path_loss: %zux%zu, expected %dx%zu", path, dims[0], dims[1],
                              LANDSCAPE_PAIRS, p->n_path);
        if (rc == RL_OK)
            rc = check_axis(path, "path_t", p->t, p->n_path);
    }
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    if (rc)
        plot_landscape_free(p);
    return rc;
}

void plot_landscape_free(struct plot_landscape *p)
{
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++) {
        free(p->label[k]);
        free(p->run[k]);
    }
    free(p->path);
    free(p->dataset);
    free(p->x);
    free(p->y);
    free(p->loss);
    free(p->t);
    free(p->path_loss);
    memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------------ draw */

static void put_value(FILE *f, double v)
{
    if (isfinite(v))
        plot_put_num(f, v);
    else
        fputs("NaN", f);
}

/* STEM: the file's base name without .h5, "landscape_" in front unless it
 * starts with "landscape" */
static char *figure_stem(const char *outdir, const char *path)
{
    const char *base = plot_base_name(path);
    size_t len = strlen(base), n;
    char *stem;

    if (len > 3 && !strcmp(base + len - 3, ".h5"))
        len -= 3;
    n = strlen(outdir) + len + 16;
    stem = xmalloc(n);
    snprintf(stem, n, "%s/%s%.*s", outdir, strncmp(base, "landscape", 9) ? "landscape_" : "", (int)len, base);
    return stem;
}

static int write_map_tsv(const struct plot_landscape *p, const char *path)
{
    char *tmp;
    FILE *f = plot_open_tmp(path, &tmp);

    if (!f)
        return RL_ERR_IO;
    fputs("# randlora landscape: training loss at theta_0 + a tau_A + b tau_B + c tau_C,\n"
          "# a = 1 - y/2 - x, b = y, c = x - y/2 (the RandLoRA paper's loss_barrier.py)\n# from ", f);
    plot_put_plain(f, p->path);
    fputs("\n# index 0: x\ty\tloss (one block per x)\n# index 1: the solutions: x\ty\tloss\tlabel\n", f);
    for (size_t i = 0; i < p->nx; i++) {
        for (size_t j = 0; j < p->ny; j++) {
            put_value(f, p->x[i]);
            fputc('\t', f);
            put_value(f, p->y[j]);
            fputc('\t', f);
            put_value(f, p->loss[i * p->ny + j]);
            fputc('\n', f);
        }
        fputc('\n', f);
    }
    fputs("\n\n", f);
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++) {
        char label[160];

        put_value(f, p->corner_x[k]);
        fputc('\t', f);
        put_value(f, p->corner_y[k]);
        fputc('\t', f);
        put_value(f, p->corner_loss[k]);
        snprintf(label, sizeof label, "%c %s (%.3f)", 'A' + (int)k, p->label[k], p->corner_loss[k]);
        fputc('\t', f);
        plot_put_plain(f, label);
        fputc('\n', f);
    }
    return plot_close_tmp(f, tmp, path);
}

/* the colour range: the lowest loss to 1.2 x the worst solution's (or the
 * highest loss when that is lower) */
static void colour_range(const struct plot_landscape *p, double *lo, double *hi)
{
    double top = -INFINITY, mx = -INFINITY;

    *lo = INFINITY;
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
        if (isfinite(p->corner_loss[k]) && p->corner_loss[k] > top)
            top = p->corner_loss[k];
    for (size_t i = 0; i < p->nx * p->ny; i++)
        if (isfinite(p->loss[i])) {
            if (p->loss[i] < *lo)
                *lo = p->loss[i];
            if (p->loss[i] > mx)
                mx = p->loss[i];
        }
    top *= TOP_FACTOR;
    *hi = isfinite(top) && top < mx ? top : mx;
    if (!(*hi > *lo))
        *hi = *lo + 1e-6;
}

static int write_map_gp(const struct plot_landscape *p, const char *gp, const char *tsv_base, const char *stem_base)
{
    char *tmp, title[512];
    FILE *f = plot_open_tmp(gp, &tmp);
    double lo, hi;

    if (!f)
        return RL_ERR_IO;
    colour_range(p, &lo, &hi);
    snprintf(title, sizeof title, "training loss on the plane of three task vectors (%s, %zu items)", p->dataset,
             p->n_items);
    fputs("# ", f);
    plot_put_plain(f, title);
    fputs("\n# randlora figure (landscape), written by results/plot_landscape.c.\n# Redraw (PNG and SVG) after "
          "restyling, in this directory:  gnuplot ", f);
    plot_put_plain(f, plot_base_name(gp));
    fputs("\n\nset encoding utf8\nset datafile separator \"\\t\"\n", f);
    fputs("data = ", f);
    plot_put_quoted(f, tsv_base);
    fputs("\n# contour lines at the base plane, drawn over the pm3d colour map\nset view map\nset contour base\nset cntrlabel onecolor\n"
          "set cntrparam levels incremental ", f);
    plot_put_num(f, lo);
    fputc(',', f);
    plot_put_num(f, (hi - lo) / N_CONTOURS);
    fputc(',', f);
    plot_put_num(f, hi);
    fputs("\n\n", f);
    fputs("set terminal pngcairo noenhanced size 820,700 font 'sans,11' linewidth 1\nset output ", f);
    {
        char png[1024];

        snprintf(png, sizeof png, "%s.png", stem_base);
        plot_put_quoted(f, png);
    }
    fputs("\nset title ", f);
    plot_put_quoted(f, title);
    fputs(" noenhanced\nset xlabel 'x   (a = 1 - y/2 - x, c = x - y/2)' noenhanced\n"
          "set ylabel 'y   (b = y)' noenhanced\nset cblabel 'training loss' noenhanced\n", f);
    fputs("set xrange [", f);
    plot_put_num(f, p->x[0]);
    fputc(':', f);
    plot_put_num(f, p->x[p->nx - 1]);
    fputs("]\nset yrange [", f);
    plot_put_num(f, p->y[0]);
    fputc(':', f);
    plot_put_num(f, p->y[p->ny - 1]);
    fputs("]\nset cbrange [", f);
    plot_put_num(f, lo);
    fputc(':', f);
    plot_put_num(f, hi);
    fprintf(f, "]\n# colours above the range (losses over %.1f x the worst solution's) are clipped to its top\n",
            TOP_FACTOR);
    fputs("set palette defined (0 '#0d0887', 1 '#6a00a8', 2 '#b12a90', 3 '#e16462', 4 '#fca636', 5 '#f0f921')\n"
          "set pm3d map interpolate 4,4\nset style textbox opaque fillcolor rgb 'white' noborder\nset size ratio -1\nset tics out nomirror\nset key off\n"
          "splot data index 0 using 1:2:3 with pm3d nocontours notitle, \\\n"
          "      data index 0 using 1:2:3 with lines nosurface linecolor rgb 'white' linewidth 1 notitle, \\\n"
          "      data index 1 using 1:2:3 with points nocontours pointtype 7 pointsize 1.6 linecolor rgb 'black' "
          "notitle, \\\n"
          "      data index 1 using 1:2:3:4 with labels nocontours boxed center offset 0,1.1 textcolor rgb 'black' "
          "font 'sans,11' notitle\nunset output\n\n",
          f);
    fputs("set terminal svg noenhanced size 820,700 dynamic font 'sans,11' background rgb 'white'\nset output ", f);
    {
        char svg[1024];

        snprintf(svg, sizeof svg, "%s.svg", stem_base);
        plot_put_quoted(f, svg);
    }
    fputs("\nreplot\nunset output\n", f);
    return plot_close_tmp(f, tmp, gp);
}

static int draw_barrier(const struct plot_landscape *p, const char *stem, size_t *written)
{
    struct plot_series s[LANDSCAPE_PAIRS];
    char names[LANDSCAPE_PAIRS][200], bstem[4200], title[512];
    struct plot_refline ref = { "frozen model", p->zero_loss };
    struct plot_figure fig;

    for (size_t q = 0; q < LANDSCAPE_PAIRS; q++) {
        size_t a, b;

        landscape_pair(q, &a, &b);
        snprintf(names[q], sizeof names[q], "%c-%c: %s to %s", 'A' + (int)a, 'A' + (int)b, p->label[a], p->label[b]);
        s[q] = (struct plot_series){ .name = names[q], .n = p->n_path, .x = p->t, .y = p->path_loss + q * p->n_path };
    }
    snprintf(bstem, sizeof bstem, "%s_barrier", stem);
    snprintf(title, sizeof title, "loss along the straight path between two solutions (%s, %zu items)",
             p->dataset, p->n_items);
    memset(&fig, 0, sizeof fig);
    /* the y range holds every path and the frozen model's line */
    fig.ymin = isfinite(p->zero_loss) ? p->zero_loss : INFINITY;
    fig.ymax = isfinite(p->zero_loss) ? p->zero_loss : -INFINITY;
    for (size_t i = 0; i < LANDSCAPE_PAIRS * p->n_path; i++)
        if (isfinite(p->path_loss[i])) {
            fig.ymin = p->path_loss[i] < fig.ymin ? p->path_loss[i] : fig.ymin;
            fig.ymax = p->path_loss[i] > fig.ymax ? p->path_loss[i] : fig.ymax;
        }
    if (fig.ymax > fig.ymin) {
        double m = 0.08 * (fig.ymax - fig.ymin);

        fig.ymin -= m;
        fig.ymax += m;
    } else {
        fig.ymin = fig.ymax = 0.0;              /* gnuplot's own range */
    }
    fig.kind = PLOT_CURVE;
    fig.stem = bstem;
    fig.title = title;
    fig.xlabel = "t   (theta_0 + (1 - t) tau_first + t tau_second)";
    fig.ylabel = "training loss";
    fig.series = s;
    fig.n_series = LANDSCAPE_PAIRS;
    fig.reflines = isfinite(p->zero_loss) ? &ref : NULL;
    fig.n_reflines = isfinite(p->zero_loss) ? 1 : 0;
    int rc = plot_write(&fig);
    if (rc == RL_OK || rc == RL_ERR_NA) {
        printf("  %s.{png,svg,gp,tsv}\n", bstem);
        (*written)++;
    }
    return rc;
}

int plot_landscape_draw(const struct plot_landscape *p, const char *outdir, size_t *written)
{
    char *stem = figure_stem(outdir, p->path);
    char *tsv = plot_path_with(stem, ".tsv"), *gp = plot_path_with(stem, ".gp");
    char tsv_base[1024];
    int rc, rc2 = RL_OK;

    snprintf(tsv_base, sizeof tsv_base, "%s", plot_base_name(tsv));
    if ((rc = write_map_tsv(p, tsv)) == RL_OK && (rc = write_map_gp(p, gp, tsv_base, plot_base_name(stem))) == RL_OK) {
        rc = plot_render(gp);
        if (rc == RL_OK || rc == RL_ERR_NA) {
            printf("  %s.{png,svg,gp,tsv}\n", stem);
            (*written)++;
        }
    }
    if (p->n_path >= 2 && rc != RL_ERR_IO)
        rc2 = draw_barrier(p, stem, written);
    free(tsv);
    free(gp);
    free(stem);
    return rc != RL_OK ? rc : rc2;
}
