"""OCR of bank-transfer forms through ML-as-a-service (paper, section IV.B.1; type 7).

Reads handwritten digits (``ocr_digits``: 8x8 grey images, pixels in [0, 1]) with a small
convolutional network in PyTorch, stored by finmlsec's torch convention (a state_dict loaded with
``weights_only=True`` into the registered ``small_cnn`` architecture) and exported to ONNX; a
scikit-learn multi-layer perceptron (skops, ONNX) is the second model, for countermeasures that
retrain the model. Quality gate: accuracy >= 0.97 on the held-out split.

Example:
    >>> roles_of(NAME)["roles"]["training_data_provider"], roles_of(NAME)["roles"]["model_operator"]
    ('bank', 'cloud_vendor')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from finmlsec.usecases.base import (
    BuildResult,
    ModelInfo,
    finish,
    roles_of,
    save_onnx_sklearn,
    save_skops,
)

NAME = "ocr"
DATASET = "ocr_digits"
GATE = ("accuracy", 0.97)
CNN_KWARGS = {"in_channels": 1, "height": 8, "width": 8, "n_classes": 10, "channels": 16}
#: how the CNN is trained (written to the spec as model.torch.train)
CNN_TRAIN: dict[str, Any] = {"epochs": 25, "lr": 3e-3, "batch_size": 32, "weight_decay": 1e-4}

def image_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro"))}


def build(out: Path, *, seed: int = 0) -> BuildResult:
    """Train, save and describe the OCR models under ``out``."""
    import torch
    from sklearn.neural_network import MLPClassifier

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.targets.torch_estimator import TorchClassifier

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ds = load(DATASET)
    train, test, pop = split_three(ds, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cnn = TorchClassifier(architecture="small_cnn", kwargs=CNN_KWARGS, input_shape=[1, 8, 8],
                              random_state=seed, **CNN_TRAIN).fit(train.X, train.y)
    finally:
        torch.set_num_threads(threads)
    net = cnn.module_
    torch.save(net.state_dict(), out / "cnn.pt")
    torch.onnx.export(
        net, (torch.zeros(1, 1, 8, 8),), str(out / "cnn.onnx"), input_names=["image"],
        output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
        dynamo=False,
    )
    torch_opts = {"architecture": "small_cnn", "kwargs": CNN_KWARGS, "input_shape": [1, 8, 8],
                  "train": {**CNN_TRAIN, "random_state": seed}}
    cnn_info = ModelInfo(
        "cnn", "convolutional network (2 conv layers of 16/32 channels, max pooling, linear "
        "head; PyTorch, 25 epochs of Adam)",
        {"torch": {"format": "torch", "path": "cnn.pt", "input_kind": "image",
                   "torch": torch_opts},
         "onnx": {"format": "onnx", "path": "cnn.onnx", "input_kind": "image"}},
        image_metrics(cnn.predict(test.X), test.y), GATE,
        notes="White-box: the torch target gives input gradients (capability 'gradient').",
    )
    mlp = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=400,
                        random_state=seed).fit(train.X, train.y)
    mlp_info = ModelInfo(
        "mlp", "multi-layer perceptron (one hidden layer of 128 ReLU units; scikit-learn)",
        {"skops": save_skops(mlp, out, "mlp", input_kind="image"),
         "onnx": save_onnx_sklearn(mlp, out, "mlp", input_kind="image", sample=train.X)},
        image_metrics(mlp.predict(test.X), test.y), GATE,
    )
    return finish(
        out, usecase=NAME, title="OCR of bank-transfer forms", roles=roles_of(NAME), dataset=ds,
        splits={"train": train, "test": test, "population": pop},
        models=(cnn_info, mlp_info), seed=seed, started=started,
        intended_use="Reads the handwritten digits of amounts and account numbers on scanned "
        "bank-transfer forms; the bank's staff check forms the model is unsure about.",
        limitations="8x8 digit images (scikit-learn's digits, from UCI's optical recognition "
        "data): far smaller than real scans; robustness figures do not transfer to production "
        "OCR.",
    )
