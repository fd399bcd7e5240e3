# make demo: install, stylize with the shipped network, train a short real run, stylize with it.
# make test: install and run the test suite (the command CI runs); make bench: the slow set and the benchmarks.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
PHOTO   ?= fastnst/assets/photos/chelsea.jpg
DEMO    := outputs/demo

.PHONY: install demo test lint bench docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[train,onnx,openvino,video,serve,browser,ray,dev]"
	@if ! command -v chromium >/dev/null; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
		echo "chromium could not be installed: the page test will be skipped (it says why)"; fi
	touch $@

demo: install
	@echo "== 1/3 stylize with the shipped starry_night network"
	$(PY) -m fastnst.cli stylize --ckpt checkpoints/starry_night.safetensors $(PHOTO) -o $(DEMO) --overwrite
	@echo "== 2/3 train starry_night for a short real run on the shipped photos (light network, 128 px; bf16 where the CPU has it)"
	rm -f $(DEMO)/starry_night.safetensors
	$(PY) scripts/train.py experiment=demo
	@echo "== 3/3 stylize with the network just trained"
	$(PY) -m fastnst.cli stylize --ckpt $(DEMO)/starry_night.safetensors $(PHOTO) --output $(DEMO)/chelsea_demo_trained.jpg --overwrite
	@echo "wrote $(DEMO)/chelsea_starry_night.jpg (shipped network) and $(DEMO)/chelsea_demo_trained.jpg (demo run)"

test: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check fastnst scripts tests
	$(VENV)/bin/ruff format --check fastnst scripts tests

bench: install
	$(PY) -m pytest -q -m slow
	$(PY) -m fastnst.bench --sections first_use backends --sizes 256 512 --widths 1.0

docs: install
	$(PY) scripts/readme_table.py
	$(PY) scripts/showcase.py
	$(PY) scripts/showcase.py --multi checkpoints/multi_style.safetensors
	$(PY) scripts/showcase.py --multi checkpoints/arbitrary.safetensors
	$(PY) scripts/showcase.py --paintings ../shared/data/paintings
	$(PY) scripts/showcase.py --paintings ../shared/data/paintings --fit \
		--photos ../shared/data/photos/bsds500/test/10081.jpg
	$(PY) scripts/serve_screenshot.py

clean:
	rm -rf $(VENV) outputs logs .pytest_cache
