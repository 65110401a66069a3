"""A PyTorch model through edgekit: export it to ONNX and to TFLite, then run `edgekit pipeline` on the files.

PyTorch is not an edgekit dependency. Run this in a separate venv that has the CPU build of torch,
litert-torch, onnx, onnxscript and edgekit (docs/pytorch.md says how):

    python examples/pytorch_to_edgekit.py                  # writes torch_model/ and prints the edgekit commands
    python examples/pytorch_to_edgekit.py --out d --epochs 1

It trains a small channels-first CNN (input [N, 1, 28, 28] floats in [0, 1], 10 logits) on the shipped MNIST,
then writes into the output folder:

    model.onnx    torch.onnx.export, input `image` with a dynamic batch axis, output `logits`
    model.tflite  litert-torch (the module as traced: NCHW input, the batch of the sample it was given: 1)
    data.npz      x_train/y_train (2,000 training images: int8 calibration) and x_test/y_test (the 10,000
                  test images), uint8 pixels in NCHW, hence `--input-scale 1/255` on the command line

and checks both files against torch on the test images (ONNX Runtime and LiteRT's interpreter): agreement of
the predicted classes and the largest logit difference.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

TRAIN_FOR_CALIBRATION = 2000  # edgekit calibrates int8 on 500 training images by default


def mnist_nchw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shipped MNIST as uint8 [N, 1, 28, 28] images and integer labels (train, then test)."""
    from toolkit.data.mnist import load_mnist

    mnist = load_mnist()
    return (
        mnist.x_train[:, None, :, :],
        mnist.y_train.astype(np.int64),
        mnist.x_test[:, None, :, :],
        mnist.y_test.astype(np.int64),
    )


def make_model() -> torch.nn.Module:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14x14
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7x7
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 64),
        nn.ReLU(),
        nn.Linear(64, 10),  # logits: edgekit's parity compares their softmax
    )


def as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 pixels to the model's input: float32 in [0, 1] (what torchvision's ToTensor gives)."""
    import torch

    return torch.from_numpy(images.astype(np.float32) / np.float32(255))


def train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    inputs, labels = as_input(x), torch.from_numpy(y)
    model.train()
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(inputs), generator=generator)
        for batch in order.split(64):
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(inputs):.4f} ({time.perf_counter() - start:.0f} s)")
    model.eval()


def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(as_input(chunk)).numpy() for chunk in np.array_split(x, 20)])


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    import torch

    sample = as_input(np.zeros((2, 1, 28, 28), dtype=np.uint8))
    # The dynamo exporter (torch's default): a dynamic batch axis, the input named `image`, the output `logits`.
    program = torch.onnx.export(
        model,
        (sample,),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
    )
    program.save(str(path))


def export_tflite(model: torch.nn.Module, path: Path) -> None:
    import litert_torch

    # The .tflite keeps the sample's shape, [1, 1, 28, 28]: litert-torch 0.10 refuses a dynamic batch axis through
    # Flatten ("Shapes must be 1D sequences of concrete values"), and LiteRT runs one image per call anyway.
    sample = as_input(np.zeros((1, 1, 28, 28), dtype=np.uint8))
    litert_torch.convert(model, (sample,)).export(str(path))


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x.astype(np.float32) / np.float32(255)})[0])


def tflite_logits(path: Path, x: np.ndarray) -> tuple[np.ndarray, str]:
    """The .tflite file's logits on `x`, one image per call when its batch is fixed, and its input shape."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp: dict[str, Any] = interpreter.get_input_details()[0]
    out: dict[str, Any] = interpreter.get_output_details()[0]
    shape = f"{[int(d) for d in inp['shape']]} {np.dtype(inp['dtype']).name}"
    batch = int(inp["shape"][0])
    rows = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch].astype(np.float32) / np.float32(255)
        interpreter.set_tensor(inp["index"], chunk)
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"]).copy())
    return np.concatenate(rows), shape


def compare(name: str, reference: np.ndarray, logits: np.ndarray, y: np.ndarray) -> None:
    agreement = float(np.mean(reference.argmax(1) == logits.argmax(1)))
    accuracy = float(np.mean(logits.argmax(1) == y))
    diff = float(np.max(np.abs(reference - logits)))
    print(f"{name}: accuracy {accuracy:.4f}, agreement with torch {agreement:.4f}, max |logit diff| {diff:.2e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("torch_model"), help="output folder (default torch_model)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    args = parser.parse_args()

    import torch

    torch.manual_seed(0)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = mnist_nchw()
    model = make_model()
    train(model, x_train, y_train, args.epochs)
    reference = torch_logits(model, x_test)
    print(f"torch: accuracy {float(np.mean(reference.argmax(1) == y_test)):.4f} on {len(y_test)} test images")

    export_onnx(model, out / "model.onnx")
    export_tflite(model, out / "model.tflite")
    np.savez(
        out / "data.npz",
        x_train=x_train[:TRAIN_FOR_CALIBRATION],
        y_train=y_train[:TRAIN_FOR_CALIBRATION],
        x_test=x_test,
        y_test=y_test,
    )
    compare(f"{out / 'model.onnx'} (ONNX Runtime)", reference, onnx_logits(out / "model.onnx", x_test), y_test)
    logits, shape = tflite_logits(out / "model.tflite", x_test)
    compare(f"{out / 'model.tflite'} (LiteRT, input {shape})", reference, logits, y_test)

    print("\nNow run edgekit on each file (in a venv that has edgekit):")
    for model_file in ("model.onnx", "model.tflite"):
        command = ["edgekit", "pipeline", "--model", str(out / model_file), "--data", str(out / "data.npz")]
        print("  " + shlex.join([*command, "--input-scale", "1/255", "--output-kind", "logits"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
