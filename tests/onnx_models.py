"""Small real ONNX models built with onnx.helper from real MNIST data, their weights fit in numpy (no Keras).

- `nchw_cnn`: tinted RGB digits 16×16, channels-first `[N, 3, 16, 16]` (the data is channels-last, as images are
  stored): /255 → Conv 3→8 3×3 stride 2 (fixed random filters) → Relu → Flatten → Gemm 512→10 fit by ridge
  regression on one-hot labels → Softmax. Input named `pixels`.
- `vector_regressor`: 49 pooled pixels `[N, 49]` → Gemm 49→64 (fixed random) → Relu → Gemm 64→2 fit by ridge
  regression on two targets (mean ink, height of mass). Input named `features`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17


def _graph(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: dict[str, np.ndarray]) -> Any:
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "edgekit_test",
        inputs,
        outputs,
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgekit-tests")
    model.ir_version = 8
    return model


def _features(model: Any, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(None, {name: x.astype(np.float32)})[0]
    return out


def _ridge(features: np.ndarray, targets: np.ndarray, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Weights [F, K] and bias [K] minimising |[X 1] W - Y|² + lam |W|² (closed form)."""
    x = np.concatenate([features, np.ones((len(features), 1), np.float32)], axis=1).astype(np.float64)
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ targets.astype(np.float64))
    return w[:-1].astype(np.float32), w[-1].astype(np.float32)


def nchw_cnn(path: Path, data: Path) -> Path:
    """The channels-first CNN classifier, fit on `data` (an .npz of uint8 [N, 16, 16, 3] images, labels 0-9)."""
    from onnx import TensorProto, helper

    d = np.load(data)
    x = d["x_train"].astype(np.float32).transpose(0, 3, 1, 2)  # to NCHW for fitting
    rng = np.random.default_rng(0)
    inits = {
        "scale": np.array(1 / 255, np.float32),
        "conv_w": rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32),
        "conv_b": np.zeros(8, np.float32),
    }
    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 16, 16])
    feats = [
        helper.make_node("Mul", ["pixels", "scale"], ["scaled"], name="rescale"),
        helper.make_node(
            "Conv", ["scaled", "conv_w", "conv_b"], ["conv"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("Flatten", ["relu"], ["flat"], name="flatten", axis=1),
    ]
    flat = helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["N", 512])
    f = _features(_graph(feats, [inp], [flat], inits), "pixels", x)
    w, b = _ridge(f, np.eye(10, dtype=np.float32)[d["y_train"]], lam=10.0)
    inits.update(fc_w=w * 4, fc_b=b * 4)  # a sharper softmax over the ridge scores
    nodes = [
        *feats,
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["scores"], name="dense"),
        helper.make_node("Softmax", ["scores"], ["probabilities"], name="softmax", axis=1),
    ]
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])
    model = _graph(nodes, [inp], [out], inits)
    _save(model, path)
    return path


def vector_regressor(path: Path, data: Path) -> Path:
    """The vector regressor, fit on `data` (an .npz of float [N, 49] features and [N, 2] targets)."""
    from onnx import TensorProto, helper

    d = np.load(data)
    rng = np.random.default_rng(1)
    inits = {"h_w": rng.normal(0, 1.0, (49, 64)).astype(np.float32), "h_b": rng.normal(0, 0.2, 64).astype(np.float32)}
    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 49])
    feats = [
        helper.make_node("Gemm", ["features", "h_w", "h_b"], ["hidden"], name="hidden"),
        helper.make_node("Relu", ["hidden"], ["relu"], name="relu"),
    ]
    relu = helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["batch", 64])
    f = _features(_graph(feats, [inp], [relu], inits), "features", d["x_train"])
    w, b = _ridge(f, d["y_train"], lam=3.0)
    inits.update(out_w=w, out_b=b)
    nodes = [*feats, helper.make_node("Gemm", ["relu", "out_w", "out_b"], ["values"], name="head")]
    out = helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", 2])
    _save(_graph(nodes, [inp], [out], inits), path)
    return path


def two_input_regressor(path: Path, data: Path) -> Path:
    """Two inputs, two outputs, fit on `data` (the ink .npz): `pooled` [N, 49] features and `thumb` [N, 7, 7, 1]
    (the same features as a channels-last thumbnail) → `values` [N, 2] (mean ink and height of mass) and
    `mean_ink` [N, 1] (a second head on the same hidden layer)."""
    from onnx import TensorProto, helper

    d = np.load(data)
    rng = np.random.default_rng(4)
    inits = {
        "h_w": rng.normal(0, 0.7, (98, 64)).astype(np.float32),
        "h_b": rng.normal(0, 0.2, 64).astype(np.float32),
    }
    inputs = [
        helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 49]),
        helper.make_tensor_value_info("thumb", TensorProto.FLOAT, ["N", 7, 7, 1]),
    ]
    feats = [
        helper.make_node("Flatten", ["thumb"], ["thumb_flat"], name="flatten_thumb", axis=1),
        helper.make_node("Concat", ["pooled", "thumb_flat"], ["both"], name="concat", axis=1),
        helper.make_node("Gemm", ["both", "h_w", "h_b"], ["hidden"], name="hidden"),
        helper.make_node("Relu", ["hidden"], ["relu"], name="relu"),
    ]
    relu = helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["N", 64])
    x = d["x_train"].astype(np.float32)
    import onnxruntime as ort

    features = _graph(feats, inputs, [relu], inits).SerializeToString()
    session = ort.InferenceSession(features, providers=["CPUExecutionProvider"])
    f = session.run(None, {"pooled": x, "thumb": x.reshape(-1, 7, 7, 1)})[0]
    w, b = _ridge(f, d["y_train"], lam=3.0)
    inits.update(out_w=w, out_b=b, ink_w=w[:, :1].copy(), ink_b=b[:1].copy())
    nodes = [
        *feats,
        helper.make_node("Gemm", ["relu", "out_w", "out_b"], ["values"], name="head"),
        helper.make_node("Gemm", ["relu", "ink_w", "ink_b"], ["mean_ink"], name="ink_head"),
    ]
    outs = [
        helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", 2]),
        helper.make_tensor_value_info("mean_ink", TensorProto.FLOAT, ["N", 1]),
    ]
    _save(_graph(nodes, inputs, outs, inits), path)
    return path


def two_input_data(path: Path, data: Path) -> Path:
    """`data` (the ink .npz) as named data for `two_input_regressor`: each input and target by tensor name."""
    d = np.load(data)
    arrays = {}
    for split in ("train", "test"):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        arrays.update(
            {
                f"pooled_{split}": x,
                f"thumb_{split}": x.reshape(-1, 7, 7, 1),
                f"values_{split}": y,
                f"mean_ink_{split}": y[:, :1],
            }
        )
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _save(model: Any, path: Path) -> None:
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path))


# -- files edgekit refuses ---------------------------------------------------------------------------------
def two_outputs(path: Path) -> Path:
    """A vector model with two outputs (a class score and a value): several outputs are not supported yet."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    inits = {"w": rng.normal(size=(49, 10)).astype(np.float32), "v": rng.normal(size=(49, 1)).astype(np.float32)}
    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 49])
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["digit"]),
        helper.make_node("MatMul", ["features", "v"], ["side"]),
    ]
    outs = [
        helper.make_tensor_value_info("digit", TensorProto.FLOAT, ["N", 10]),
        helper.make_tensor_value_info("side", TensorProto.FLOAT, ["N", 1]),
    ]
    _save(_graph(nodes, [inp], outs, inits), path)
    return path


def sequence_output(path: Path) -> Path:
    """A model whose output is a sequence of tensors (as a ZipMap gives maps): not a tensor."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 49])
    nodes = [helper.make_node("SequenceConstruct", ["features"], ["seq"])]
    out = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, ["N", 49])
    _save(_graph(nodes, [inp], [out], {}), path)
    return path


def int64_input(path: Path) -> Path:
    """A model fed int64 token ids: a dtype edgekit cannot feed."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 49])
    nodes = [helper.make_node("Cast", ["ids"], ["out"], to=TensorProto.FLOAT)]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 49])
    _save(_graph(nodes, [inp], [out], {}), path)
    return path


def fixed_batch(path: Path, data: Path, batch: int = 1) -> Path:
    """The regressor with its batch axis fixed at `batch` (1: PyTorch's default export without dynamic axes; edgekit
    gives the run's copy a dynamic batch axis, as the graph allows)."""
    import onnx

    vector_regressor(path, data)
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save_model(model, str(path))
    return path


def batch_one_reshape(path: Path, data: Path) -> Path:
    """The regressor fixed at batch 1 whose graph also holds that batch: a Reshape to [1, 49] at its input (as a
    traced `x.view(1, -1)` exports): it cannot run at another batch, so it is refused."""
    import onnx
    from onnx import helper, numpy_helper

    fixed_batch(path, data)
    model = onnx.load(str(path))
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array([1, 49], np.int64), "batch_one_shape"))
    graph.node.insert(0, helper.make_node("Reshape", ["pixels", "batch_one_shape"], ["features"], name="view"))
    graph.input[0].name = "pixels"
    _save(model, path)
    return path


def two_inputs(path: Path) -> Path:
    """Image and metadata inputs added together: several inputs are not supported yet."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 49]) for n in ("image", "meta")]
    nodes = [helper.make_node("Add", ["image", "meta"], ["sum"], name="add")]
    out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 49])
    _save(_graph(nodes, inputs, [out], {}), path)
    return path


def typed_input(path: Path, dtype: str) -> Path:
    """A model fed `dtype` ("uint8" pixels or "float16"): a Cast to float32, then a Relu."""
    from onnx import TensorProto, helper

    elem = {"uint8": TensorProto.UINT8, "float16": TensorProto.FLOAT16}[dtype]
    inp = helper.make_tensor_value_info("pixels", elem, ["N", 49])
    nodes = [
        helper.make_node("Cast", ["pixels"], ["as_float"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Relu", ["as_float"], ["out"], name="relu"),
    ]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 49])
    _save(_graph(nodes, [inp], [out], {}), path)
    return path


def dynamic_spatial(path: Path) -> Path:
    """A fully convolutional classifier `[N, 3, H, W]` (height and width dynamic): Conv → GlobalAveragePool."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    inits = {"w": rng.normal(size=(10, 3, 3, 3)).astype(np.float32)}
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], name="conv"),
        helper.make_node("GlobalAveragePool", ["conv"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["scores"], name="flatten"),
    ]
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])
    _save(_graph(nodes, [inp], [out], inits), path)
    return path


def opset_too_new(path: Path) -> Path:
    """A Relu stamped with an ai.onnx opset beyond what the installed onnx and onnxruntime know."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 49])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 49])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "edgekit_test", [inp], [out])
    newest = onnx.defs.onnx_opset_version()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", newest + 3)], producer_name="future")
    onnx.save_model(model, str(path))  # not through the checker: the point is a file from a newer toolchain
    return path


def not_onnx(path: Path) -> Path:
    """A file named .onnx that holds something else (a CSV export saved under the wrong name)."""
    path.write_text("label,pixel0,pixel1\n7,0,0\n")
    return path


def external_data_missing(path: Path, data: Path) -> Path:
    """The regressor saved with its weights in an external file, which is then removed."""
    import onnx

    vector_regressor(path, data)
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    (path.parent / "weights.bin").unlink()
    return path


# -- an ONNX file from another framework: scikit-learn's MLPClassifier, converted by skl2onnx ---------------------
SKL_TRAIN, SKL_TEST = 2000, 1000
SKL_OPSETS = {"": OPSET, "ai.onnx.ml": 3}


def mnist_pixels(path: Path, *, images: bool = False) -> Path:
    """2,000 training and 1,000 test MNIST digits, /255 float32: flattened [N, 784] (as the MLP was fit), or
    channels-last images [N, 28, 28, 1] (`images`, as images are stored) for the NCHW-wrapped model."""
    from toolkit.data.mnist import load_mnist

    m = load_mnist()

    def pixels(x: np.ndarray) -> np.ndarray:
        scaled = x.astype(np.float32) / 255
        return scaled[..., None] if images else scaled.reshape(len(x), -1)

    np.savez(
        path,
        x_train=pixels(m.x_train[:SKL_TRAIN]),
        y_train=m.y_train[:SKL_TRAIN],
        x_test=pixels(m.x_test[:SKL_TEST]),
        y_test=m.y_test[:SKL_TEST],
    )
    return path


def named_images(path: Path, outputs: tuple[str, ...] = ("label", "probabilities")) -> Path:
    """The digits of `mnist_pixels` as named data for the NCHW two-output MLP: `image` [N, 1, 28, 28] float32
    /255 (channels-first, as the model takes them), and the same digit labels as the target of each output (the
    `label` class indices and the `probabilities` classes), each split as `<name>_train` / `<name>_test`."""
    from toolkit.data.mnist import load_mnist

    m = load_mnist()
    arrays: dict[str, np.ndarray] = {}
    for split, x, y in (
        ("train", m.x_train[:SKL_TRAIN], m.y_train[:SKL_TRAIN]),
        ("test", m.x_test[:SKL_TEST], m.y_test[:SKL_TEST]),
    ):
        arrays[f"image_{split}"] = (x.astype(np.float32) / 255)[:, None]
        arrays.update({f"{name}_{split}": y.astype(np.int64) for name in outputs})
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def sklearn_mlp(path: Path, data: Path, *, zipmap: bool = True) -> Path:
    """An MLPClassifier (784 → 64 relu → 10) fit on `data` (mnist_pixels, flattened) and converted by skl2onnx as
    a user would: by default with its ZipMap (a sequence of maps, refused), or `zipmap=False` (two outputs: the
    int64 label [N] and the float probabilities [N, 10])."""
    import warnings

    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    d = np.load(data)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=80, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 80 epochs on 2,000 digits: accurate enough here
        clf.fit(d["x_train"], d["y_train"])
    options = None if zipmap else {id(clf): {"zipmap": False}}
    model = to_onnx(clf, d["x_train"][:1], options=options, target_opset=SKL_OPSETS)
    _save(model, path)
    return path


def probabilities_only(path: Path, source: Path) -> Path:
    """The zipmap=False MLP with only its `probabilities` output: the label output and the nodes only it needs
    are dropped (onnx.utils.Extractor), a single-output classifier edgekit takes today."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(source))
    names = [i.name for i in model.graph.input]
    extracted = Extractor(model).extract_model(names, ["probabilities"])
    extracted.producer_name, extracted.producer_version = model.producer_name, model.producer_version
    _save(extracted, path)
    return path


def nchw_wrapped(path: Path, source: Path) -> Path:
    """`source` (an MLP on [N, 784]) taking NCHW images [N, 1, 28, 28] instead: a Flatten node prepended, so a
    framework other than Keras gives a channels-first model (with two outputs when `source` has them)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    graph = model.graph
    flat = graph.input[0].name
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])
    graph.node.insert(0, helper.make_node("Flatten", ["image"], [flat], name="flatten_image", axis=1))
    del graph.input[:]
    graph.input.append(image)
    _save(model, path)
    return path


def outlier_unit(path: Path, source: Path, *, value: float = 2000.0) -> Path:
    """`source` (the single-output MLP) with one more hidden unit whose activation is the constant `value` and
    whose weight into the output layer is 0: the same probabilities in float, but per-tensor int8 of the hidden
    layer spends its 256 levels on the outlier (as tests/sensitive_models.py does for Keras)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    inits = {t.name: t for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    hidden_w, head_w, hidden_b = (
        inits[matmuls[0].input[1]],
        inits[matmuls[1].input[1]],
        inits[next(i for i in adds[0].input if i in inits)],
    )
    w1, w2, b1 = (numpy_helper.to_array(t) for t in (hidden_w, head_w, hidden_b))
    b1 = b1.reshape(-1)
    new = {
        hidden_w.name: np.concatenate([w1, np.zeros((w1.shape[0], 1), w1.dtype)], axis=1),
        hidden_b.name: np.concatenate([b1, np.array([value], b1.dtype)]),
        head_w.name: np.concatenate([w2, np.zeros((1, w2.shape[1]), w2.dtype)], axis=0),
    }
    for name, array in new.items():
        inits[name].CopyFrom(numpy_helper.from_array(array, name))
    del model.graph.value_info[:]  # the hidden width changed
    _save(model, path)
    return path
