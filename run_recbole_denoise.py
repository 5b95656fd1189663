"""Run a RecBole model with AutoDenoise or a baseline scheme on the paper's clean protocol.

python run_recbole_denoise.py --model=SASRec --dataset=ml-1m --scheme=autodenoise_s
"""

from recbole_autodenoise.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
