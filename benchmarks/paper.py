"""The paper's own Table 3 rows for Movielens-100K-latest (= ml-latest-small), for comparison.

Transcribed from /work/shared/paper/autodenoise-paper.md (an OCR'd markdown of the paper). Units are
the paper's: Precision, Recall and NDCG in %, F1 as a fraction. ``None`` marks a value that is not
legible there. Caveats, all shown in the report:

* the NDCG K=50 column is clipped in the markdown (its header reads "K=5"; values such as "8.895"
  or "10.5" have lost trailing digits), so every NDCG@50 value is a possibly truncated prefix;
* the SASRec ADT-TL / ADT-RL / AutoDenoise-H rows are interleaved by the OCR. ADT-RL's P@50 and F1
  were attributed with the identities every row of the table obeys (P@K = R@K / K,
  F1@K = 2 R@K / (K + 1)); AutoDenoise-H keeps only its values that differ from ADT-RL's in the same
  cell (R@20 and NDCG), the rest are None;
* SASRec AutoDenoise-S's printed F1 values do not satisfy F1 = 2R/(K+1) (0.0214 vs 0.0260 expected
  at K=10); they are transcribed as printed.
"""

from __future__ import annotations

METRICS = tuple(f"{m}@{k}" for m in ("precision", "recall", "f1", "ndcg") for k in (10, 20, 50))
PAPER_DATASET = "ml-latest-small"
TRUNCATED = frozenset({"ndcg@50"})

_ROWS = {  # P@10 P@20 P@50 | R@10 R@20 R@50 | F1@10 F1@20 F1@50 | NDCG@10 NDCG@20 NDCG@50
    ("BPR", "default"): (0.9688, 0.7881, 0.6108, 9.6880, 15.763, 30.541, 0.0176, 0.0150, 0.0119, 4.4379, 6.0021, 8.895),
    ("BPR", "heuristic"): (0.9523, 0.7471, 0.5911, 9.5238, 14.942, 29.556, 0.0173, 0.0142, 0.0115, 4.9292, 6.2640, 9.101),
    ("BPR", "adt_tl"): (1.0016, 0.8949, 0.7060, 10.016, 17.898, 35.303, 0.0182, 0.0170, 0.0138, 5.0444, 7.0297, 10.43),
    ("BPR", "adt_rl"): (1.0673, 0.8292, 0.7027, 10.673, 16.584, 35.139, 0.0194, 0.0157, 0.0137, 5.3187, 6.7970, 10.43),
    ("BPR", "autodenoise_h"): (0.9523, 0.8292, 0.7224, 9.5238, 16.584, 36.124, 0.0173, 0.0157, 0.0141, 4.8617, 6.6550, 10.5),
    ("BPR", "autodenoise_s"): (0.9688, 0.9113, 0.6765, 9.6880, 18.226, 33.825, 0.0176, 0.0173, 0.0132, 5.1248, 7.2770, 10.31),
    ("GRU4Rec", "default"): (0.8538, 0.7881, 0.5451, 8.5385, 15.763, 27.257, 0.0155, 0.0150, 0.0106, 4.2018, 6.0134, 8.28),
    ("GRU4Rec", "heuristic"): (0.8702, 0.6978, 0.5845, 8.7027, 13.957, 29.228, 0.0158, 0.0132, 0.0114, 4.2326, 5.5695, 8.589),
    ("GRU4Rec", "adt_tl"): (0.8374, 0.6814, 0.5977, 8.3743, 13.628, 29.885, 0.0152, 0.0129, 0.0117, 4.2777, 5.5915, 8.82),
    ("GRU4Rec", "adt_rl"): (0.6075, 0.5911, 0.5057, 6.0755, 11.822, 25.287, 0.0110, 0.0112, 0.0099, 2.4933, 3.9205, 6.59),
    ("GRU4Rec", "autodenoise_h"): (0.7881, 0.7635, 0.6338, 7.8817, 15.270, 31.691, 0.0143, 0.0145, 0.0124, 4.3511, 6.2202, 9.438),
    ("GRU4Rec", "autodenoise_s"): (0.9195, 0.8292, 0.6469, 9.1954, 16.584, 32.348, 0.0167, 0.0157, 0.0126, 4.8351, 6.6880, 9.78),
    ("SASRec", "default"): (0.9852, 0.7389, 0.5221, 9.8522, 14.778, 26.108, 0.0179, 0.0140, 0.0102, 6.3683, 7.5960, 9.83),
    ("SASRec", "heuristic"): (1.1494, 0.8456, 0.5188, 11.494, 16.912, 25.944, 0.0208, 0.0161, 0.0101, 7.6434, 8.9963, 10.83),
    ("SASRec", "adt_tl"): (0.8045, 0.5008, 0.2922, 8.0459, 10.016, 14.614, 0.0146, 0.0095, 0.0057, 7.1405, 7.6332, 8.53),
    ("SASRec", "adt_rl"): (1.1986, 0.8538, 0.5353, 11.986, 17.077, 26.765, 0.0217, 0.0162, 0.0104, 8.1410, 9.4106, 11.3),
    ("SASRec", "autodenoise_h"): (None, None, None, None, 15.270, None, None, None, None, 7.8775, 8.7565, 10.9),
    ("SASRec", "autodenoise_s"): (1.4285, 1.0098, 0.6765, 14.285, 20.197, 33.825, 0.0214, 0.0143, 0.0103, 9.7465, 11.248, 13.9),
}

PAPER_ROWS: dict[tuple[str, str], dict[str, float | None]] = {
    key: dict(zip(METRICS, values)) for key, values in _ROWS.items()
}
# Sec. 5.4.1: mean learned weight of true-positive / false-positive training samples, averaged over
# the three data sets (SASRec-AutoDenoise-H and -S).
PAPER_WEIGHTS = {"tp_mean_weight": 1.114, "fp_mean_weight": 0.132}
