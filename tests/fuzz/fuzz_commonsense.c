/*
 * fuzz_commonsense.c: libFuzzer harness for the commonsense item reader
 * (datasets/commonsense.c, cs_load) and what runs on every item: the input
 * is written to a private temporary file and loaded; each loaded item goes
 * through the training and evaluation prompts, the response split and the
 * answer extraction of every kind, and the set is written and read back
 * (the same items). Any load status is fine; a crash, sanitizer report,
 * leak or hang is a bug. Seeds (tests/fuzz/corpus/commonsense/): small
 * procedural sets and hand-written odd items.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "datasets/commonsense.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], path[128], back[128];
    struct cs_set set, again;

    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_commonsense_%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0)
            abort();
        snprintf(path, sizeof path, "%s/items.json", dir);
        snprintf(back, sizeof back, "%s/back.json", dir);
    }
    if (fuzz_write_file(path, data, size) != 0)
        abort();
    if (cs_load(&set, path) != RL_OK)
        return 0;
    for (size_t i = 0; i < set.n; i++) {
        char *p = cs_train_prompt(&set.items[i], i & 1), *e = cs_eval_prompt(&set.items[i]);
        char *r = cs_response(set.items[i].output);
        for (int k = CS_KIND_TRUE_FALSE; k <= CS_KIND_OPTION; k++)
            (void)cs_is_correct((enum cs_answer_kind)k, set.items[i].output, set.items[i].answer);
        if (strlen(r) > strlen(set.items[i].output) || !strstr(p, set.items[i].instruction) ||
            !strstr(e, set.items[i].instruction))
            abort();
        free(p);
        free(e);
        free(r);
    }
    if (cs_write(&set, back) != RL_OK || cs_load(&again, back) != RL_OK || again.n != set.n)
        abort();
    for (size_t i = 0; i < set.n; i++)
        if (strcmp(again.items[i].instruction, set.items[i].instruction) != 0 ||
            strcmp(again.items[i].answer, set.items[i].answer) != 0)
            abort();
    cs_free(&again);
    cs_free(&set);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
