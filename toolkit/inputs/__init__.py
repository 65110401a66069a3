"""Images in, digits out: what `edgekit predict` reads and how a model is fed and answered.

    images.py         reading any image file or .npy array as grey or RGB pixels (size limits, one-line errors)
    photo.py          MNIST-style preprocessing of digit photos for the reference model
    model_input.py    images → any model's input (resize, value range) and its outputs (logits, values)
    predict.py        which model file and spec to use (file, run directory or bundle) and classifying images
    errors.py         `ImageError`

May import: `runtimes`, `toolkit.model.spec`, `toolkit.bundles` (a model inside a bundle), `toolkit.errors`
and `toolkit.run`. Never the CLI, Rich or Typer: nothing here prints. numpy and Pillow are imported where
they are needed.
"""
