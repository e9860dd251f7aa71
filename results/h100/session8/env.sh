# sourced at the start of every device run: tinygrad + rich from carried wheels, CUDA compiler library, data mirror
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 DEV=CUDA MINIMAC_DATA=$PWD/.gpu/data
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import tinygrad, torch; from tinygrad import Tensor; print('tinygrad', (Tensor.ones(4,4)@Tensor.ones(4,4)).sum().item(), Tensor.ones(1).device, 'torch', torch.__version__)"
