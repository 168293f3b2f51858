# io_uring, one technique at a time.
#
#   make                 build every step
#   make run [STEP=03]   build and start a step on port 8000 (default: the newest)
#   make test            build everything and run every step's test suite
#   make diff STEP=03    what step 03 adds to step 02
#                        STEP=epilogue: the epilogue (epilogue_defer_taskrun),
#                        step 07 retuned for few cores, here and below;
#                        its diff is against step 07
#   make bench           measure every step and nginx: bench/out/results.md, .svg
#                        (ignored by git; RUNS=1 SECONDS_PER_RUN=1 SERVERS="..."
#                        for a quick look)
#   make bench-publish   maintainers: the same into the committed bench/results.md
#                        and .svg, then make tutorial copies its figures
#   make fuzz            fuzz the request parser for FUZZ_SECONDS (60) with libFuzzer
#   make valgrind        the finished server under memcheck: no error, no leak
#   make trace STEP=03   one request through the kernel, from io_uring's own
#                        tracepoints: timeline, summary, SVG (root; TARGET=/path,
#                        ARGS="server options"); make trace-all: every step's into trace/
#   make tutorial        regenerate TUTORIAL.md's diffs, excerpts and figures
#   make walkthrough     run every command TUTORIAL.md gives, in a scratch clone,
#                        and check each shows what the text says (a few minutes)
#   make solution STEP=03  the solutions to step 03's exercises in TUTORIAL.md
#   make deps            install what is missing (as root), or say how
#   make doctor          is this machine ready for the workshop? a verdict per step
#   make vmtest [KERNEL=6.1|6.12|PATH]  boot Debian's kernel under QEMU, run the
#                        doctor and every step's suites inside (root)
#   make clean
#
# SANITIZE=1 builds servers and tests with AddressSanitizer and UBSan.

STEPS := $(sort $(wildcard step[0-9][0-9]_*))
NEWEST := $(lastword $(STEPS))
# Not a numbered step: the sequence ends in step 07; this is step 07 again,
# for a machine with few cores (TUTORIAL.md's epilogue).
EPILOGUE := $(wildcard epilogue_*)
SERVERS := $(STEPS) $(EPILOGUE)
PORT ?= 8000
step_dir = $(or $(if $(filter epilogue,$(STEP)),$(EPILOGUE),$(wildcard step$(STEP)_*)),$(error no step $(STEP): try one of $(STEPS) or epilogue))

all: $(SERVERS)

$(SERVERS): FORCE
	@$(MAKE) --no-print-directory -C $@

deps:
	@sh scripts/deps.sh bench

# test and run need only the core packages; bench needs load tools too.
deps-core:
	@sh scripts/deps.sh

# Every check runs even when one before it fails (a server.c edited for an
# exercise fails the drift checks once, and its suites still say whether the
# edit works); make test fails at the end, naming the checks that failed.
TEST_CHECKS := tests/check_repo.sh tests/check_trace.sh tests/check_doctor.sh \
	tests/doctor_trials tests/check_solutions.sh tests/check_walkthrough.sh tests/run_tests
test: deps-core
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C tests
	@failed=""; for c in $(TEST_CHECKS); do \
		echo "$$c"; $$c || failed="$$failed $$c"; \
	done; \
	test -z "$$failed" || { echo "make test: failed:$$failed"; exit 1; }

# TUTORIAL.md's commands, run as the text gives them, in a scratch clone,
# as the invoking user (scripts/walkthrough.sh); make test runs the fast
# subset in place (tests/check_walkthrough.sh).
walkthrough: deps-core
	@scripts/walkthrough.sh

# Not after deps-core: the doctor reports what is missing rather than stop
# at it. Building it needs only a compiler and liburing's headers.
doctor: scripts/doctor
	@scripts/doctor

scripts/doctor: scripts/doctor.c
	@pkg-config --exists 'liburing >= 2.3' 2>/dev/null || { sh scripts/deps.sh --check; exit 1; }
	$(CC) -O2 -g -Wall -Wextra -std=gnu11 -o $@ $< $$(pkg-config --cflags --libs liburing)

# Debian 12's kernels under QEMU (scripts/vmtest.sh); root, and says so.
KERNEL ?= 6.1
vmtest:
	@scripts/vmtest.sh '$(KERNEL)'

run: deps-core
	@$(MAKE) --no-print-directory $(if $(STEP),$(step_dir),$(NEWEST))
	./$(if $(STEP),$(step_dir),$(NEWEST))/server -p $(PORT)

# No timestamps in the labels, so the output is the same on every machine.
diff:
	@case "$(STEP)" in \
	[0-9][0-9]) \
		cur=$$(ls -d step$(STEP)_* 2>/dev/null); \
		prev=$$(ls -d step$$(printf %02d $$(expr $(STEP) - 1))_* 2>/dev/null) ;; \
	epilogue) cur="$(EPILOGUE)"; prev="$(NEWEST)" ;; \
	*) echo "usage: make diff STEP=NN, e.g. make diff STEP=03, or make diff STEP=epilogue" >&2; exit 2 ;; esac; \
	test -n "$$cur" || { echo "no step $(STEP): try one of $(STEPS) or epilogue" >&2; exit 2; }; \
	test -n "$$prev" || { echo "step $(STEP) is the first: nothing to diff" >&2; exit 2; }; \
	diff -u --label $$prev/server.c --label $$cur/server.c $$prev/server.c $$cur/server.c; \
	test $$? -le 1

# The kernel's side of one request (scripts/trace.sh): needs root for tracefs,
# and says so otherwise. trace-all regenerates trace/stepNN.txt and .svg
# (trace/epilogue.txt and .svg for the epilogue).
# Without TARGET and ARGS, each step is traced as its chapter and
# trace/stepNN.txt show it (scripts/trace_plan.sh: 05 with -s 100000,
# 07 fetching /large).
trace:
	@case "$(STEP)" in [0-9][0-9] | epilogue) ;; *) echo "usage: make trace STEP=NN|epilogue [TARGET=/path] [ARGS=\"server options\"], e.g. make trace STEP=03" >&2; exit 2 ;; esac
	@. scripts/trace_plan.sh; trace_plan $(STEP); \
	scripts/trace.sh -t $(if $(TARGET),'$(TARGET)',"$$target") -a $(if $(filter undefined,$(origin ARGS)),"$$args",'$(ARGS)') $(STEP)

trace-all:
	@scripts/trace_all.sh trace

.PHONY: trace trace-all

# Without root the load tools may be missing: bench/run.sh then says what
# it lacks, and leaves out nginx alone if only nginx is missing.
# make bench writes into bench/out/, which git ignores: the committed
# bench/results.md, which TUTORIAL.md quotes and make test checks against,
# changes only through bench-publish, on a quiet machine.
bench: deps-core
	@sh scripts/deps.sh bench || true
	@$(MAKE) --no-print-directory all
	bench/run.sh

bench-publish: deps-core
	@sh scripts/deps.sh bench || true
	@$(MAKE) --no-print-directory all
	BENCH_OUT=bench bench/run.sh
	scripts/update_tutorial.sh
	@echo "bench/results.md, results.svg and TUTORIAL.md's figures updated: review git diff, run make test, commit"

FUZZ_SECONDS ?= 60
fuzz: deps-core
	@command -v clang >/dev/null 2>&1 || { echo "make fuzz needs clang: sudo apt-get install -y clang" >&2; exit 1; }
	@$(MAKE) --no-print-directory -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

valgrind: deps-core
	@$(MAKE) --no-print-directory step07_send_zc
	scripts/valgrind.sh

tutorial:
	scripts/update_tutorial.sh

# The exercises' solutions, as patches (make test checks that they apply and pass).
solution:
	@case "$(STEP)" in [0-9][0-9]) p=step$(STEP) ;; epilogue) p=epilogue ;; *) echo "usage: make solution STEP=NN, e.g. make solution STEP=02" >&2; exit 2 ;; esac; \
	found=0; \
	for p in solutions/$$p-*.patch; do \
		test -e "$$p" || continue; found=1; \
		echo "==> $$p (to try it: git apply $$p; to undo: git apply -R $$p)"; \
		cat "$$p"; echo; \
	done; \
	test $$found = 1 || { echo "no solutions for step $(STEP) in solutions/" >&2; exit 2; }

clean:
	@for d in $(SERVERS) tests fuzz; do $(MAKE) --no-print-directory -C $$d clean; done
	rm -f scripts/doctor

.PHONY: all deps deps-core doctor vmtest test run walkthrough bench bench-publish fuzz valgrind tutorial solution diff clean FORCE
