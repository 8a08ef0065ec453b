# randlora: build, run, test, benchmark.
#
#   make            build ./randlora (objects under build/)
#   make run        the main job (installs missing Debian packages first)
#   make check      the test suite (installs missing Debian packages first)
#   make bench      benchmarks
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
PKGS     = openblas hdf5 zlib libpng libjpeg inih libcjson libpcre2-8
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


.PHONY: all run check bench clean deps
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
	$(Q)$(MAKE) --no-print-directory $(BUILD)/tests/check_main $(BUILD)/randlora
	$(Q)RANDLORA_BIN=$(BUILD)/randlora $(BUILD)/tests/check_main

# bench: the kernel benchmark, then issue 7's table (bench/run_table.sh:
# randlora bench vs bench/torch_baseline.py, about 10 minutes on 2 cores;
# docs/BENCHMARKS.md)
bench: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD)/bench/bench_main randlora
	$(Q)$(BUILD)/bench/bench_main
	$(Q)RANDLORA=$(BUILD)/randlora bash bench/run_table.sh $(BUILD)/bench/table.jsonl

clean:
	rm -rf build randlora

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d)
