"""Anchor: the bare minimum a user would write to classify one image with a .tflite int8 model.

python bare_predict.py MODEL.tflite IMAGE  -> prints the digit
"""
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

im = Image.open(sys.argv[2]).convert("L").resize((28, 28))
x = (255 - np.asarray(im, np.float32)) / 255.0
it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
s, z = i["quantization"]
it.set_tensor(i["index"], np.clip(np.round(x[None, ..., None] / s + z), -128, 127).astype(np.int8)); it.invoke()
print(int(it.get_tensor(o["index"]).argmax()))
