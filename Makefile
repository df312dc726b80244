# The two commands of a fresh machine: `make run` (set up, train and score the default agent)
# and `make test` (set up, run the tests). Both create .venv and install torch==2.13.0 first:
# the CPU wheel lies on this machine's disk, and letting pip choose a torch would download CUDA.
# A torch already in .venv (a CPU build installed by hand, see the README) is kept.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pfhedge 0.23, the arena benchmark's reference, needs numpy < 2: it gets a venv of its own.
PF_VENV := .venv-pfhedge
PF_STAMP := $(PF_VENV)/.installed
ARENA_BENCH = $(PY) bench/arena.py --pfhedge-python $(PF_VENV)/bin/python

.PHONY: setup run test lint typecheck bench bench-pfhedge bench-floor quality leaderboard leaderboard-option-book zoo-blocks clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,ray,zoo]"
	touch $(STAMP)

$(PF_STAMP): Makefile
	test -x $(PF_VENV)/bin/python || $(PYTHON) -m venv $(PF_VENV)
	$(PF_VENV)/bin/python -c 'import torch' 2>/dev/null || $(PF_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(PF_VENV)/bin/python -m pip install --quiet "numpy>=1.26,<2" pfhedge==0.23.0
	touch $(PF_STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) train.py

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy envs baselines agents hedgearena
	$(PY) -m pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy envs baselines agents hedgearena

bench: $(STAMP) $(PF_STAMP)
	$(PY) bench/pricing.py
	$(PY) bench/env_throughput.py
	$(ARENA_BENCH)
	$(PY) bench/sweep.py

bench-pfhedge: $(STAMP) $(PF_STAMP)
	$(ARENA_BENCH)

# A fused numba kernel of the arena's case beside pfhedge (numba is not a dependency of
# hedgearena: it goes into pfhedge's venv, and the script never imports hedgearena).
bench-floor: $(PF_STAMP)
	$(PF_VENV)/bin/python -c 'import numba, scipy' 2>/dev/null || $(PF_VENV)/bin/python -m pip install --quiet numba==0.68.1 scipy "numpy<2"
	$(PF_VENV)/bin/python bench/fused_floor.py

quality: $(STAMP)
	$(PY) bench/quality.py

# Every learner x 3 seeds on the default case, a Ray Tune grid on all cores (about an hour on
# 2); its tables and plot are copied into bench/results/leaderboard/. Run again after an
# interruption, it resumes the sweep (finished trials are kept).
LEADERBOARD := runs/leaderboard-ShortCall
leaderboard: $(STAMP)
	$(PY) train.py sweep --config configs/leaderboard.yml --no-progress $$(test -d $(LEADERBOARD) && echo --resume)
	mkdir -p bench/results/leaderboard
	for f in results.json results.md summary.csv summary.md sweep.png; do cp $(LEADERBOARD)/$$f bench/results/leaderboard/; done

# The same on the market maker's book (OptionBook-v0, 20,000 scoring paths): the SB3 learners x 3
# seeds (configs/leaderboard_option_book.yml), deep hedging's OptionBook config over the same
# seeds, and the classical hedges on the same paths (about 90 minutes on 2 cores in all); their
# tables are copied into bench/results/leaderboard_option_book/.
LEADERBOARD_OB := runs/leaderboard-OptionBook
LEADERBOARD_OB_DH := runs/leaderboard-OptionBook-deep_hedging
LEADERBOARD_OB_BASELINES := runs/leaderboard-OptionBook-baselines
LEADERBOARD_OB_RESULTS := bench/results/leaderboard_option_book
leaderboard-option-book: $(STAMP)
	$(PY) train.py sweep --config configs/leaderboard_option_book.yml --no-progress $$(test -d $(LEADERBOARD_OB) && echo --resume)
	$(PY) train.py sweep --config configs/option_book_deep_hedging.yml --name $(notdir $(LEADERBOARD_OB_DH)) \
	    --set 'sweep.space={seed: [0, 1, 2]}' --hedgers delta --no-progress $$(test -d $(LEADERBOARD_OB_DH) && echo --resume)
	$(PY) train.py benchmark --env hedgearena/OptionBook-v0 --paths 20000 --no-progress \
	    --hedgers delta band:best ww:best zakamouline:best adaptive leland --name $(notdir $(LEADERBOARD_OB_BASELINES))
	mkdir -p $(LEADERBOARD_OB_RESULTS)
	for f in results.json results.md summary.csv summary.md sweep.png; do \
	    cp $(LEADERBOARD_OB)/$$f $(LEADERBOARD_OB_RESULTS)/; \
	    cp $(LEADERBOARD_OB_DH)/$$f $(LEADERBOARD_OB_RESULTS)/deep_hedging_$$f; done
	for f in scores.csv scores.md; do cp $(LEADERBOARD_OB_BASELINES)/$$f $(LEADERBOARD_OB_RESULTS)/baselines_$$f; done

# The zoo blocks of PortfolioInsurance-v0 and the replay that no leaderboard covers: every SB3
# algorithm but PPO, seed 0, scored against delta on the arena's 100,000 paths (the replay out
# of sample: trained before 2010, scored from 2010 on), one torch thread a run; with -j2 about
# 35 minutes on 2 cores. Each run's config, hyperparameters, training history and scores are
# copied into bench/results/zoo_blocks/<algo>-<env>/ (the README's table).
ZOO_ALGOS := sac td3 ddpg tqc recurrent_ppo
ZOO_RUNS := $(foreach a,$(ZOO_ALGOS),zoo-$(a)-PortfolioInsurance zoo-$(a)-HistoricalReplay)
ZOO_RESULTS := bench/results/zoo_blocks
.PHONY: $(ZOO_RUNS)
zoo-blocks: $(ZOO_RUNS)
$(ZOO_RUNS): zoo-%: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) train.py train --agent $(word 1,$(subst -, ,$*)) \
	    --env hedgearena/$(word 2,$(subst -, ,$*))-v0 --seed 0 --hedgers delta --name $@ --no-progress \
	    $(if $(findstring HistoricalReplay,$*),--set arena.split=2010-01-01)
	mkdir -p $(ZOO_RESULTS)/$*
	cp runs/$@/config.yaml runs/$@/hyperparams.yaml runs/$@/training.json runs/$@/report/scores.csv \
	    $(ZOO_RESULTS)/$*/

clean:
	rm -rf $(VENV) $(PF_VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
