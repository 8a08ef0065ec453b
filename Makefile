# randlora: build, run, test, benchmark.
#
#   make            build ./randlora (objects under build/)
#   make run        the main job (installs missing Debian packages first)
#   make check      the test suite, then the fuzz corpora replayed (installs
#                   missing Debian packages first)
#   make bench      benchmarks
#   make fuzz       every libFuzzer harness in tests/fuzz/ for FUZZ_SECONDS (20) each
#   make clean
#
# Switches: SAN=1 (ASan + UBSan), NO_OMP=1 (no OpenMP), OPT=... (default
# -O3 -march=native; never -ffast-math: training numerics depend on IEEE
# semantics), V=1 (echo commands), MPI=0 (no MPI even when installed:
# every run is one process; core/dist.h, docs/cluster.md).

CC      ?= gcc
OPT     ?= -O3 -march=native
CSTD     = -std=c11 -D_DEFAULT_SOURCE
# math functions need not set errno (nothing reads it after one), so loops
# calling sqrtf vectorize (AdamW); every value stays IEEE-exact as before
FP       = -fno-math-errno
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Werror=implicit-function-declaration -Werror=vla
PKGS     = openblas hdf5 zlib libpng libjpeg inih libcjson libpcre2-8 icu-uc
# oneDNN (bf16 GEMMs, core/gemm_bf16.c): Debian's libdnnl-dev ships no
# pkg-config file; its header and library are in the default paths
DNNL_LIBS = -ldnnl

BUILD   := build
ifeq ($(SAN),1)
  BUILD := build/san
  OPT   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
endif
ifeq ($(NO_OMP),1)
  BUILD := $(BUILD)/noomp
else
  OMP   := -fopenmp
endif

# pkg-config runs only when a compile needs it (after scripts/deps.sh)
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS))
CHECK_LIBS  = $(shell pkg-config --libs check)
CFLAGS     += $(CSTD) $(FP) $(WARN) $(OPT) $(OMP) -pthread -g -MMD -MP -I. $(PKG_CFLAGS)
LDFLAGS    += $(LDSAN) $(OMP) -pthread
LDLIBS     += $(PKG_LIBS) $(DNNL_LIBS) -lm

# MPI (core/dist.c, the only file that includes mpi.h): Open MPI's
# pkg-config file when it is installed, unless MPI=0 (objects then go under
# build/.../nompi). build/.../mpi.on or mpi.off records which way dist.o was
# built, so installing MPI later rebuilds it.
ifeq ($(MPI),0)
  BUILD := $(BUILD)/nompi
else
  MPI_PKG = $(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c)
endif
MPI_STAMP = $(BUILD)/mpi.$(if $(MPI_PKG),on,off)
LDLIBS   += $(if $(MPI_PKG),$(shell pkg-config --libs $(MPI_PKG)))
$(BUILD)/core/dist.o: CFLAGS += $(if $(MPI_PKG),-DRANDLORA_MPI $(shell pkg-config --cflags $(MPI_PKG)))

ifneq ($(V),1)
  Q = @
endif

# librandlora.a: the engine (everything but the command line); cli/: the
# commands over it; bench/gemm_count.c: the cblas_sgemm interposer, linked
# only into what measures (randlora, for `randlora bench`, and the tests of it)
LIB_DIRS  = core formats models methods datasets experiments results
LIB_SRC   = $(wildcard $(addsuffix /*.c,$(LIB_DIRS)))
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC   = $(filter-out cli/main.c,$(wildcard cli/*.c))
CLI_OBJ   = $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/bench/gemm_count.o
MAIN_OBJ  = $(BUILD)/cli/main.o
TEST_SRC  = $(wildcard tests/*.c)
TEST_OBJ  = $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_OBJ = $(BUILD)/bench/bench_main.o

# where `make run` writes (the same rule as experiment_output_root)
OUT_ROOT  = $(if $(RANDLORA_OUT),$(RANDLORA_OUT),out)


.PHONY: all run check bench clean deps fuzz fuzz-build fuzz-replay
all: randlora

randlora: $(BUILD)/randlora
	$(Q)ln -sf $(BUILD)/randlora randlora

$(BUILD)/librandlora.a: $(LIB_OBJ)
	$(Q)ar rcs $@.$$$$ $^ && mv -f $@.$$$$ $@

$(BUILD)/randlora: $(MAIN_OBJ) $(CLI_OBJ) $(BUILD)/librandlora.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/check_main: $(TEST_OBJ) $(CLI_OBJ) $(BUILD)/librandlora.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench/bench_main: $(BENCH_OBJ) $(BUILD)/librandlora.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# each saved activation's effect on the gradients when stored in bf16
# (docs/kernels.md, "bf16 activations")
$(BUILD)/bench/bf16_act_error: $(BUILD)/bench/bf16_act_error.o $(BUILD)/librandlora.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# a random preset as a model directory, for bench/dist_scaling.sh
$(BUILD)/bench/random_model: $(BUILD)/bench/random_model.o $(BUILD)/librandlora.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the logits of a DINOv2 backbone + a peft adapter with a head, for
# tests/ref/check_head_export_in_peft.py (not part of `make check`)
$(BUILD)/tests/ref/head_logits: $(BUILD)/tests/ref/head_logits.o $(BUILD)/librandlora.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/core/dist.o: $(MPI_STAMP)
$(BUILD)/mpi.on $(BUILD)/mpi.off:
	@mkdir -p $(BUILD) && rm -f $(BUILD)/mpi.on $(BUILD)/mpi.off && touch $@

# objects depend on this file too: a changed flag rebuilds them
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# scripts/deps.sh installs what is missing; it is fast when nothing is.
deps:
	$(Q)bash scripts/deps.sh

# run and check install dependencies first, then build in a fresh make so
# pkg-config sees the installed packages.
# run: the quickstart end to end (README, "The two commands"): pretrain
# clip-tiny (cached), the sweep (finished runs kept), the per-layer analysis
# (into analysis.txt: hundreds of lines), the figures, and last the report
# table, so the final screen is the result.
QS_DIR = $(OUT_ROOT)/runs/quickstart
run: deps
	$(Q)$(MAKE) --no-print-directory randlora
	./randlora pretrain -c experiments/quickstart.ini
	./randlora sweep -c experiments/quickstart.ini --resume
	./randlora analyze $(QS_DIR)/*.h5 > $(QS_DIR)/analysis.txt
	@echo "per-layer analysis (spectra, ranks): $(QS_DIR)/analysis.txt"
	./randlora plot $(QS_DIR)
	./randlora report $(QS_DIR) -c experiments/quickstart.ini

check: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD)/tests/check_main $(BUILD)/randlora $(FUZZ_REPLAY)
	$(Q)RANDLORA_BIN=$(BUILD)/randlora $(BUILD)/tests/check_main
	$(Q)$(MAKE) --no-print-directory fuzz-replay

# bench: the kernel benchmark, then issue 7's table (bench/run_table.sh:
# randlora bench vs bench/torch_baseline.py, about 10 minutes on 2 cores;
# docs/BENCHMARKS.md)
bench: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD)/bench/bench_main randlora
	$(Q)$(BUILD)/bench/bench_main
	$(Q)RANDLORA=$(BUILD)/randlora bash bench/run_table.sh $(BUILD)/bench/table.jsonl

clean:
	rm -rf build randlora

# ------------------------------------------------------------------ fuzzing
# tests/fuzz/fuzz_NAME.c: one libFuzzer harness per reader, its seeds in
# tests/fuzz/corpus/NAME/ (docs/reliability.md, "Fuzzing").
#   make fuzz FUZZ_SECONDS=N  builds every harness with clang into build/fuzz/
#                             and runs each for N seconds; any crash,
#                             sanitizer report, leak or timeout fails it
#                             (the input lands in build/fuzz/crash/NAME/);
#                             tests/fuzz/NAME.options: more libFuzzer flags
#   fuzz-replay (in make check) builds each harness with $(CC) and the
#                             FUZZ_MAIN driver (tests/fuzz/fuzz_replay.h) and
#                             runs the committed corpus through it once
FUZZ_SECONDS ?= 20
FUZZ_CC      ?= clang
FUZZ_DIR      = build/fuzz
FUZZ_NAMES    = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS     = $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
# OpenMP as in the real build (clang's libomp; make fuzz runs one thread);
# -Wno-pass-failed: clang at -O1 cannot always honour the "omp simd" hint
FUZZ_CFLAGS   = $(CSTD) $(FP) $(WARN) -Wno-pass-failed -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fopenmp -pthread -MMD -MP \
                -I. $(PKG_CFLAGS)
FUZZ_LIB_OBJ  = $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_CLI_OBJ  = $(CLI_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/bench/gemm_count.o
FUZZ_REPLAY   = $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)
# per input: a hang past this many seconds is a failure too
FUZZ_TIMEOUT ?= 10

$(FUZZ_DIR)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CLANG $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/librandlora.a: $(FUZZ_LIB_OBJ) $(FUZZ_CLI_OBJ)
	$(Q)ar rcs $@.$$$$ $^ && mv -f $@.$$$$ $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_replay.h $(FUZZ_DIR)/librandlora.a
	@echo "  FUZZ  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/librandlora.a $(LDLIBS)

# the replay drivers: the same harnesses, built like the tests
$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_replay.h $(CLI_OBJ) $(BUILD)/librandlora.a
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -DFUZZ_MAIN $(LDFLAGS) -o $@ $< $(CLI_OBJ) $(BUILD)/librandlora.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)for n in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$n $(FUZZ_DIR)/crash/$$n || exit 1; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp OMP_NUM_THREADS=1 \
	    $(FUZZ_DIR)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=2048 \
	        -print_final_stats=1 -close_fd_mask=3 -artifact_prefix=$(FUZZ_DIR)/crash/$$n/ \
	        $$(cat tests/fuzz/$$n.options 2>/dev/null) \
	        $(FUZZ_DIR)/corpus/$$n tests/fuzz/corpus/$$n > $(FUZZ_DIR)/$$n.log 2>&1 \
	        || { tail -n 60 $(FUZZ_DIR)/$$n.log; echo "fuzz: $$n FAILED (log $(FUZZ_DIR)/$$n.log)"; exit 1; }; \
	    grep -h -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' $(FUZZ_DIR)/$$n.log | tail -n 1; \
	done

fuzz-replay: $(FUZZ_REPLAY)
	$(Q)for n in $(FUZZ_NAMES); do \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp $(BUILD)/fuzz/replay_$$n tests/fuzz/corpus/$$n/* \
	        > $(BUILD)/fuzz/replay_$$n.log 2>&1 || { cat $(BUILD)/fuzz/replay_$$n.log; echo "fuzz-replay: $$n FAILED"; exit 1; }; \
	done
	@echo "fuzz-replay: $(words $(FUZZ_NAMES)) harnesses, $$(ls tests/fuzz/corpus/*/* | wc -l) corpus files"

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(BUILD)/tests/ref/head_logits.d
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_CLI_OBJ:.o=.d) $(FUZZ_BINS:=.d) $(FUZZ_REPLAY:=.d)
