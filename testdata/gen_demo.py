#!/usr/bin/python3
"""Generate the demo assets under testdata/demo/.

Run with Debian's interpreter (python3-onnx, python3-numpy, python3-opencv):

    /usr/bin/python3 testdata/gen_demo.py            # everything
    /usr/bin/python3 testdata/gen_demo.py crowded    # demo/crowded.* only (numpy and OpenCV)

It writes:
  demo/conveyor.avi          MJPG video, 640x360 at 10 fps: parts of three shapes and four
                             colours passing left to right on a grey belt.
  demo/conveyor.truth.json   per frame, every part: colour, shape and pixel box (clipped).
  demo/crowded.avi           the same belt, crowded (see CROWDED): parts at different speeds,
                             side by side, touching, and one that stops for two seconds.
  demo/crowded.truth.json    its truth, in the format of conveyor.truth.json.
  demo/stills/frame_NNN.jpg  a few frames of the video as JPEG files.
  demo/detector/             a Custom Vision style "General (compact)" YOLO export folder.
  demo/classifier/           a Custom Vision style compact classifier export folder (colour).
  demo/shape/                a Custom Vision ONNX 1.2 style classifier folder (shape):
                             classLabel + loss (ZipMap), for the second stage or a hierarchy.
  models/detector-fp16/      the detector in the float16 flavour (float16 input and output).
  models/detector-symbolic/  the detector with symbolic height and width.
  models/detector-ssd/       an S1 (SSD) export: image_tensor, RGB, no pixel metadata;
                             detected_boxes/scores/classes, the class being the colour.
  models/classifier-fp16/    the colour classifier in the float16 flavour.
  models/classifier-rgb01/   the colour classifier wanting RGB divided by 255, as its
                             metadata_props say.
  models/classifier-v2/      another iteration of the colour classifier, its tags ending in
                             _v2, for model lifecycle tests.

The models are real ONNX graphs whose outputs are computed from the pixels:
  * detector: a pixel is foreground when its chroma (max channel - min channel) exceeds a
    threshold; for every 32x32 grid cell the graph measures the extent of the foreground in
    the 5x5 cells around it, and the cell that holds the centre of that extent emits one box
    on the first anchor, with objectness from the fill ratio. Output layout, anchors and
    decoding follow the Custom Vision YOLO export.
  * colour classifier: mean colour of the foreground pixels of the crop, softmax over the
    negative squared distance to a prototype colour per tag.
  * shape classifier: fill ratio of the foreground inside its own extent (square 1.0,
    circle 0.79, triangle 0.5), softmax over the negative squared distance to each.

Everything is deterministic (fixed seed), so re-running gives the same files, apart from the
video container's encoder details.
"""

import hashlib
import json
import os
import sys
import uuid

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "demo")
MODELS = os.path.join(HERE, "models")

OPSET = 13
CHROMA_MIN = 35.0  # a pixel with max-min channel spread above this is foreground
ANCHORS = [(0.573, 0.677), (1.87, 2.06), (3.34, 5.47), (7.88, 3.53), (9.77, 9.17)]

# Colours are BGR, as OpenCV draws them and as the models read them.
COLOURS = {
    "blue": (190, 100, 30),
    "green": (60, 170, 60),
    "red": (45, 40, 200),
    "yellow": (40, 200, 220),
}
SHAPES = {"circle": 0.785, "square": 1.0, "triangle": 0.5}

WIDTH, HEIGHT, FPS = 640, 360, 10
STILLS = (40, 80, 120)  # frames also saved as JPEG stills, for `cvedge predict` tests


# ---------------------------------------------------------------------------------------
# graph helpers


class G:
    """A tiny graph builder: each call adds one node and returns its output name."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value, dtype=np.float32):
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        self.n += 1
        name = out or f"t{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], **attrs))
        return name

    def foreground(self, data):
        """Hard foreground mask [N,1,H,W] (1.0 where chroma > CHROMA_MIN)."""
        mx = self.op("ReduceMax", data, axes=[1], keepdims=1)
        mn = self.op("ReduceMin", data, axes=[1], keepdims=1)
        chroma = self.op("Sub", mx, mn)
        return self.op("Cast", self.op("Greater", chroma, self.const(CHROMA_MIN)), to=TensorProto.FLOAT)

    def coords(self, like):
        """Column and row index maps with the shape of `like` ([N,1,H,W])."""
        ones = self.op("Add", self.op("Mul", like, self.const(0.0)), self.const(1.0))
        one = self.const(1.0)
        x = self.op("Sub", self.op("CumSum", ones, self.const(3, np.int64)), one)
        y = self.op("Sub", self.op("CumSum", ones, self.const(2, np.int64)), one)
        return x, y

    def extent(self, mask, coord, pool):
        """Lowest and highest coordinate of the foreground under each pooling window."""
        big = self.const(1e5)
        one = self.const(1.0)
        hi = self.op("Sub", self.op(pool[0], self.op("Mul", mask, self.op("Add", coord, one)), **pool[1]), one)
        notm = self.op("Sub", one, mask)
        lo = self.op("Neg", self.op(pool[0], self.op("Sub", self.op("Neg", coord), self.op("Mul", notm, big)), **pool[1]))
        return lo, hi


def save(graph_nodes, inits, inputs, outputs, path, meta, opsets=None, name="cvedge-fixture"):
    graph = helper.make_graph(graph_nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=opsets or [helper.make_opsetid("", OPSET)],
        producer_name="cvedge testdata/gen_demo.py",
        producer_version="1",
    )
    model.ir_version = 7
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = model.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    return data


def export_folder(folder, data, labels, domain, flavor, iteration, meta_json):
    """Write the files of a Custom Vision export beside model.onnx."""
    with open(os.path.join(folder, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")
    with open(os.path.join(folder, "metadata_properties.json"), "w") as f:
        json.dump(meta_json, f, indent=2)
    manifest = {
        "DomainType": domain,
        "Platform": "ONNX",
        "Flavor": flavor,
        "ExporterVersion": "2.0",
        "ExportedDate": "2026-11-28T00:00:00.0000000Z",
        "IterationId": iteration,
        "ModelFileName": "model.onnx",
        "LabelFileName": "labels.txt",
        "MetadataPropsFileName": "metadata_properties.json",
        "ModelFileSHA1": hashlib.sha1(data).hexdigest(),
        "SchemaVersion": "1.0",
    }
    with open(os.path.join(folder, "cvexport.manifest"), "w") as f:
        json.dump(manifest, f, indent=2)


def iteration_id(name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "cvedge-demo/" + name))


META_BGR_255 = {
    "Image.BitmapPixelFormat": "Bgr8",
    "Image.ColorSpaceGamma": "SRGB",
    "Image.NominalPixelRange": "NominalRange_0_255",
}


# ---------------------------------------------------------------------------------------
# models


def image_input(g, name, fp16):
    """The float32 tensor to compute on: the input itself, or its cast from float16."""
    return g.op("Cast", name, to=TensorProto.FLOAT) if fp16 else name


def float_output(g, value, name, fp16):
    """Name a result as a graph output, cast to float16 for the float16 flavour."""
    g.op("Cast", value, to=TensorProto.FLOAT16, out=name) if fp16 else g.op("Identity", value, out=name)


def elem(fp16):
    return TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT


def part_cells(g, data, window_cells=5):
    """Per 32x32 grid cell: the foreground extent in the window of cells around it, and
    ind = 1 in the one cell that holds the centre of a part."""
    m = g.foreground(data)
    x, y = g.coords(m)
    k = 32 * window_cells
    pad = 32 * (window_cells // 2)
    pool = {"kernel_shape": [k, k], "strides": [32, 32], "pads": [pad, pad, pad, pad]}
    c = {"mask": m, "pool": pool, "area": float(k * k)}
    c["left"], c["right"] = g.extent(m, x, ("MaxPool", pool))
    c["top"], c["bottom"] = g.extent(m, y, ("MaxPool", pool))
    c["count"] = g.op("Mul", g.op("AveragePool", m, count_include_pad=1, **pool), g.const(c["area"]))
    one = g.const(1.0)
    c["w"] = g.op("Max", g.op("Add", g.op("Sub", c["right"], c["left"]), one), one)
    c["h"] = g.op("Max", g.op("Add", g.op("Sub", c["bottom"], c["top"]), one), one)
    half = g.const(0.5)
    cx = g.op("Mul", g.op("Add", g.op("Add", c["left"], c["right"]), one), half)
    cy = g.op("Mul", g.op("Add", g.op("Add", c["top"], c["bottom"]), one), half)
    c["fill"] = g.op("Div", c["count"], g.op("Mul", c["w"], c["h"]))
    col, row = g.coords(c["count"])
    cell = g.const(32.0)
    c["fx"] = g.op("Sub", g.op("Div", cx, cell), col)
    c["fy"] = g.op("Sub", g.op("Div", cy, cell), row)
    zero = g.const(0.0)

    def inside(f):
        return g.op("And", g.op("Not", g.op("Less", f, zero)), g.op("Less", f, one))

    ok = g.op("And", inside(c["fx"]), inside(c["fy"]))
    ok = g.op("And", ok, g.op("Greater", c["count"], g.const(64.0)))
    ok = g.op("And", ok, g.op("Greater", c["fill"], g.const(0.35)))
    c["ind"] = g.op("Cast", ok, to=TensorProto.FLOAT)
    return c


DETECTOR_PROPS = {
    "CustomVision.Metadata.Version": "1.2", "CustomVision.Postprocess.Method": "Yolo",
    "CustomVision.Postprocess.Yolo.Biases": json.dumps([v for a in ANCHORS for v in a]),
    "CustomVision.Postprocess.Yolo.NMS": "0.45", "CustomVision.Preprocess.ResizeMethod": "Stretch",
    "CustomVision.Preprocess.TargetHeight": "416", "CustomVision.Preprocess.TargetWidth": "416",
    "Image.BitmapPixelFormat": "Rgb8", "Image.ColorSpaceGamma": "SRGB", "Image.NominalPixelRange": "Normalized_0_1",
}


def build_detector(folder, size=416, fp16=False, symbolic=False, name="detector"):
    """Custom Vision YOLO export: data [1,3,H,W] -> model_outputs0 [1, 5*(5+1), H/32, W/32]."""
    g = G()
    c = part_cells(g, image_input(g, "data", fp16))
    one = g.const(1.0)

    def logit(f):
        v = g.op("Clip", f, g.const(0.02), g.const(0.98))
        return g.op("Log", g.op("Div", v, g.op("Sub", one, v)))

    cell = g.const(32.0)
    aw, ah = ANCHORS[0]
    tw = g.op("Log", g.op("Div", g.op("Div", c["w"], cell), g.const(aw)))
    th = g.op("Log", g.op("Div", g.op("Div", c["h"], cell), g.const(ah)))
    # objectness logit: 10*fill - 3.5 where a part is centred in the cell, -10 elsewhere
    obj = g.op("Sub", g.op("Mul", c["ind"], g.op("Add", g.op("Mul", c["fill"], g.const(10.0)), g.const(6.5))), g.const(10.0))
    zeros = g.op("Mul", c["count"], g.const(0.0))
    never = g.op("Sub", zeros, g.const(10.0))
    chans = [logit(c["fx"]), logit(c["fy"]), tw, th, obj, zeros]
    for _ in ANCHORS[1:]:
        chans += [zeros, zeros, zeros, zeros, never, zeros]
    float_output(g, g.op("Concat", *chans, axis=1), "model_outputs0", fp16)

    grid = size // 32
    in_dims = [1, 3, "height", "width"] if symbolic else [1, 3, size, size]
    out_dims = [1, len(ANCHORS) * 6, "grid_h", "grid_w"] if symbolic else [1, len(ANCHORS) * 6, grid, grid]
    inp = helper.make_tensor_value_info("data", elem(fp16), in_dims)
    out = helper.make_tensor_value_info("model_outputs0", elem(fp16), out_dims)
    raw = save(g.nodes, g.inits, [inp], [out], os.path.join(folder, "model.onnx"), META_BGR_255, name="demo-" + name)
    export_folder(folder, raw, ["part"], "ObjectDetection", "OnnxFloat16" if fp16 else None, iteration_id(name), DETECTOR_PROPS)


def build_ssd_detector(folder, size=320):
    """Custom Vision S1 (SSD) export: image_tensor [1,3,320,320] RGB 0-255 (no pixel metadata)
    -> detected_boxes [1,N,4] (x1,y1,x2,y2), detected_scores [1,N], detected_classes [1,N] int64,
    one candidate per grid cell (NMS is in the graph: only centre cells score). The class is the
    part's colour, from the mean colour of the foreground around the cell."""
    g = G()
    c = part_cells(g, "image_tensor")
    n = (size // 32) ** 2
    scale = g.const(1.0 / size)
    one = g.const(1.0)
    x1, y1 = g.op("Mul", c["left"], scale), g.op("Mul", c["top"], scale)
    x2 = g.op("Mul", g.op("Add", c["right"], one), scale)
    y2 = g.op("Mul", g.op("Add", c["bottom"], one), scale)
    boxes = g.op("Reshape", g.op("Concat", x1, y1, x2, y2, axis=1), g.const([1, 4, n], np.int64))
    g.op("Transpose", boxes, perm=[0, 2, 1], out="detected_boxes")
    score = g.op("Mul", c["ind"], g.op("Sigmoid", g.op("Sub", g.op("Mul", c["fill"], g.const(10.0)), g.const(3.5))))
    g.op("Reshape", score, g.const([1, n], np.int64), out="detected_scores")
    fg = g.op("AveragePool", g.op("Mul", "image_tensor", c["mask"]), count_include_pad=1, **c["pool"])
    mean = g.op("Div", fg, g.op("Max", g.op("AveragePool", c["mask"], count_include_pad=1, **c["pool"]), g.const(1e-6)))
    labels = sorted(COLOURS)
    protos = np.array([COLOURS[t][::-1] for t in labels], dtype=np.float32)  # RGB
    wconv = g.const((2.0 * protos / 4000.0).reshape(len(labels), 3, 1, 1).astype(np.float32))
    bconv = g.const((-(protos * protos).sum(axis=1) / 4000.0).astype(np.float32))
    cls = g.op("ArgMax", g.op("Conv", mean, wconv, bconv), axis=1, keepdims=0)
    g.op("Reshape", cls, g.const([1, n], np.int64), out="detected_classes")
    inp = helper.make_tensor_value_info("image_tensor", TensorProto.FLOAT, [1, 3, size, size])
    outs = [helper.make_tensor_value_info("detected_boxes", TensorProto.FLOAT, [1, n, 4]),
            helper.make_tensor_value_info("detected_scores", TensorProto.FLOAT, [1, n]),
            helper.make_tensor_value_info("detected_classes", TensorProto.INT64, [1, n])]
    raw = save(g.nodes, g.inits, [inp], outs, os.path.join(folder, "model.onnx"), {}, name="demo-ssd")
    export_folder(folder, raw, labels, "ObjectDetection", None, iteration_id("ssd"), {"Image.BitmapPixelFormat": "Rgb8"})


def prototype_logits(g, features, protos, temperature):
    """logits[n,c] = -(|f_n - p_c|^2)/T up to a per-row constant, as one Gemm."""
    p = np.array(protos, dtype=np.float32)  # [C,F]
    wmat = g.const((2.0 * p.T / temperature).astype(np.float32))  # [F,C]
    bias = g.const((-(p * p).sum(axis=1) / temperature).astype(np.float32))  # [C]
    return g.op("Gemm", features, wmat, bias)


def build_colour_classifier(folder, size=224, fp16=False, rgb01=False, name="colour", tag_suffix=""):
    """Compact classifier: data [N,3,224,224] -> model_output [N,4], the softmax over the
    distance of the foreground's mean colour to each tag's colour. rgb01 makes a model that
    wants RGB divided by 255 (and says so in its metadata_props)."""
    g = G()
    data = image_input(g, "data", fp16)
    if rgb01:
        data = g.op("Mul", data, g.const(255.0))
    m = g.foreground(data)
    axes = g.const([2, 3], np.int64)
    cnt = g.op("ReduceSum", m, axes, keepdims=0)  # [N,1]
    sums = g.op("ReduceSum", g.op("Mul", data, m), axes, keepdims=0)  # [N,3]
    mean = g.op("Div", sums, g.op("Max", cnt, g.const(1.0)))
    labels = sorted(COLOURS)
    protos = [COLOURS[t][::-1] if rgb01 else COLOURS[t] for t in labels]
    float_output(g, g.op("Softmax", prototype_logits(g, mean, protos, 4000.0), axis=1), "model_output", fp16)
    inp = helper.make_tensor_value_info("data", elem(fp16), ["batch", 3, size, size])
    out = helper.make_tensor_value_info("model_output", elem(fp16), ["batch", len(labels)])
    meta = dict(META_BGR_255)
    if rgb01:
        meta.update({"Image.BitmapPixelFormat": "Rgb8", "Image.NominalPixelRange": "Normalized_0_1"})
    raw = save(g.nodes, g.inits, [inp], [out], os.path.join(folder, "model.onnx"), meta, name="demo-" + name)
    export_folder(folder, raw, [t + tag_suffix for t in labels], "Classification", "OnnxFloat16" if fp16 else None, iteration_id(name),
                  {"CustomVision.Metadata.Version": "1.2", "CustomVision.Preprocess.ResizeMethod": "Stretch",
                   "Image.BitmapPixelFormat": "Rgb8", "Image.NominalPixelRange": "Normalized_0_1"})


def build_shape_classifier(folder, size=227):
    """ONNX 1.2 era signature: classLabel (string [N,1]) and loss (seq(map(string,float)))."""
    g = G()
    m = g.foreground("data")
    x, y = g.coords(m)
    gpool = ("MaxPool", {"kernel_shape": [size, size]})
    left, right = g.extent(m, x, gpool)
    top, bottom = g.extent(m, y, gpool)
    one = g.const(1.0)
    w = g.op("Max", g.op("Add", g.op("Sub", right, left), one), one)
    h = g.op("Max", g.op("Add", g.op("Sub", bottom, top), one), one)
    cnt = g.op("ReduceSum", m, g.const([2, 3], np.int64), keepdims=1)  # [N,1,1,1]
    fill = g.op("Div", cnt, g.op("Mul", w, h))
    fill2 = g.op("Reshape", fill, g.const([-1, 1], np.int64))  # [N,1]
    labels = sorted(SHAPES)
    logits = prototype_logits(g, fill2, [[SHAPES[t]] for t in labels], 0.004)
    prob = g.op("Softmax", logits, axis=1)
    idx = g.op("ArgMax", prob, axis=1, keepdims=1)  # [N,1]
    picked = g.op("ArrayFeatureExtractor", g.const(np.array(labels, dtype=object), object), idx, domain="ai.onnx.ml")
    g.op("Reshape", picked, g.const([-1, 1], np.int64), out="classLabel")
    g.nodes.append(helper.make_node("ZipMap", [prob], ["loss"], domain="ai.onnx.ml", classlabels_strings=labels))
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, size, size])
    out_label = helper.make_tensor_value_info("classLabel", TensorProto.STRING, ["None", 1])
    map_type = onnx.TypeProto()
    map_type.map_type.key_type = TensorProto.STRING
    map_type.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    loss_type = onnx.TypeProto()
    loss_type.sequence_type.elem_type.CopyFrom(map_type)
    out_loss = helper.make_value_info("loss", loss_type)
    path = os.path.join(folder, "model.onnx")
    raw = save(g.nodes, g.inits, [inp], [out_label, out_loss], path, {"Image.BitmapPixelFormat": "Bgr8"},
               opsets=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 1)], name="demo-shape")
    export_folder(folder, raw, labels, "Classification", "ONNX12", iteration_id("shape"),
                  {"Image.BitmapPixelFormat": "Rgb8", "Image.NominalPixelRange": "Normalized_0_1"})


# ---------------------------------------------------------------------------------------
# video


def part_polygon(shape, cx, cy, r):
    if shape == "square":
        return np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    if shape == "triangle":
        return np.array([[cx - r, cy + r], [cx + r, cy + r], [cx, cy - r]])
    raise ValueError(shape)


def belt(f, speed):
    """The empty belt in frame f, its slats moved by speed pixels a frame."""
    img = np.full((HEIGHT, WIDTH, 3), 72, np.uint8)
    # belt slats move with the parts; grey only, so they carry no chroma
    off = (f * speed) % 40
    for x in range(-40 + off, WIDTH, 40):
        img[:, max(x, 0):max(x + 3, 0)] = 84
    img[:22], img[-22:] = 45, 45  # belt edges
    return img


def draw_part(img, p, cx, cy, r):
    """Draws part p centred at (cx, cy) and returns its truth entry (box clipped to the frame)."""
    import cv2

    colour = COLOURS[p["colour"]]
    if p["shape"] == "circle":
        cv2.circle(img, (cx, cy), r, colour, -1, cv2.LINE_AA)
    else:
        cv2.fillPoly(img, [part_polygon(p["shape"], cx, cy, r).astype(np.int32)], colour, cv2.LINE_AA)
    x1, x2 = max(cx - r, 0), min(cx + r + 1, WIDTH)
    return {
        "id": p["id"], "colour": p["colour"], "shape": p["shape"],
        "box": [x1, cy - r, x2 - x1, 2 * r + 1],
        "visible": round((x2 - x1) / (2 * r + 1), 3),
    }


def build_video(path, truth_path, parts=9, spacing=300, speed=20):
    import cv2

    rng = np.random.default_rng(7)
    colours, shapes = sorted(COLOURS), sorted(SHAPES)
    plan = []
    for i in range(parts):
        plan.append({
            "id": i + 1,
            "colour": colours[i % len(colours)],
            "shape": shapes[(i // len(colours) + i) % len(shapes)],
            "r": int(rng.integers(38, 47)),
            "cy": int(rng.integers(95, HEIGHT - 95)),
            "x0": -60 - i * spacing,
        })
    frames = (60 + (parts - 1) * spacing + WIDTH + 60) // speed
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        sys.exit("cannot open a MJPG video writer")
    noise = rng.integers(-4, 5, size=(HEIGHT, WIDTH, 1)).astype(np.int16)
    truth = {"width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": []}
    for f in range(frames):
        img = belt(f, speed)
        items = []
        for p in plan:
            cx, cy, r = p["x0"] + f * speed, p["cy"], p["r"]
            if cx + r < 0 or cx - r >= WIDTH:
                continue
            items.append(draw_part(img, p, cx, cy, r))
        img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        writer.write(img)
        if f in STILLS:
            os.makedirs(os.path.join(DEMO, "stills"), exist_ok=True)
            cv2.imwrite(os.path.join(DEMO, "stills", "frame_%03d.jpg" % f), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        truth["frames"].append({"index": f, "parts": items})
    writer.release()
    with open(truth_path, "w") as fh:
        json.dump(truth, fh, indent=1)
        fh.write("\n")

# The crowded belt: what a tracker finds hard, part by part. y is the row a part rides in;
# speeds are pixels a frame (at 10 fps), the belt's pace being 14; a part with several runs
# changes speed at each run's first frame, and speed 0 is a stop.
CROWDED = [
    # 1 and 2 ride side by side in the same columns, at the top and at the bottom of the belt
    {"id": 1, "colour": "red", "shape": "circle", "r": 40, "cy": 84, "enter": 0, "x0": -45, "runs": [(0, 14)]},
    {"id": 2, "colour": "blue", "shape": "square", "r": 38, "cy": 272, "enter": 0, "x0": -60, "runs": [(0, 14)]},
    # 3 follows 2; a stop holds it in the middle of the belt for 20 frames (two seconds)
    {"id": 3, "colour": "green", "shape": "square", "r": 40, "cy": 250, "enter": 18, "x0": -45,
     "runs": [(18, 14), (43, 0), (63, 14)]},
    # 4 is the fast one, three times the belt's pace: it passes 3 while 3 is stopped, in the
    # row just above it, its side touching 3's side as it goes by
    {"id": 4, "colour": "yellow", "shape": "square", "r": 40, "cy": 169, "enter": 45, "x0": -45, "runs": [(45, 44)]},
]
CROWDED_FRAMES = 104


def crowded_x(p, f):
    """The centre column of crowded part p in frame f (None before it enters)."""
    if f < p["enter"]:
        return None
    x = p["x0"]
    for g in range(p["enter"], f):
        x += [v for start, v in p["runs"] if start <= g][-1]
    return x


def build_crowded(path, truth_path):
    """A harder belt for the tracker and the per-part decision, with the models of the demo:
    parts at different speeds (one more than three times faster than the rest), two parts
    touching, parts in the same columns in the two lanes, and a part standing still for two
    seconds.

    Where two parts are near, the demo detector's 5x5-cell windows reach over both. Two parts
    touching one behind the other are always one box to it, and while they part it also gives,
    for a frame or two, a third box over both beside each one's own: a part that no tracker
    could tell from a real one. Touching side by side (rows 81 px apart), as 4 and 3 do, it
    sees them as one box or neither for the few frames they are near, and never a box beside
    theirs. The truth gives each part's own box, so a box over two parts matches neither."""
    import cv2

    rng = np.random.default_rng(15)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        sys.exit("cannot open a MJPG video writer")
    noise = rng.integers(-4, 5, size=(HEIGHT, WIDTH, 1)).astype(np.int16)
    truth = {"width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": []}
    for f in range(CROWDED_FRAMES):
        img = belt(f, 14)
        items = []
        for p in CROWDED:
            cx, cy, r = crowded_x(p, f), p["cy"], p["r"]
            if cx is None or cx + r < 0 or cx - r >= WIDTH:
                continue
            items.append(draw_part(img, p, cx, cy, r))
        img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        writer.write(img)
        truth["frames"].append({"index": f, "parts": items})
    writer.release()
    with open(truth_path, "w") as fh:
        json.dump(truth, fh, indent=1)
        fh.write("\n")


def main():
    if sys.argv[1:] == ["crowded"]:
        build_crowded(os.path.join(DEMO, "crowded.avi"), os.path.join(DEMO, "crowded.truth.json"))
        print("wrote", os.path.join(DEMO, "crowded.avi"))
        return
    if sys.argv[1:]:
        sys.exit("usage: gen_demo.py [crowded]")
    build_detector(os.path.join(DEMO, "detector"))
    build_colour_classifier(os.path.join(DEMO, "classifier"))
    build_shape_classifier(os.path.join(DEMO, "shape"))
    # the other export flavours, for the model tests
    build_detector(os.path.join(MODELS, "detector-fp16"), fp16=True, name="detector-fp16")
    build_detector(os.path.join(MODELS, "detector-symbolic"), symbolic=True, name="detector-symbolic")
    build_ssd_detector(os.path.join(MODELS, "detector-ssd"))
    build_colour_classifier(os.path.join(MODELS, "classifier-fp16"), fp16=True, name="colour-fp16")
    build_colour_classifier(os.path.join(MODELS, "classifier-rgb01"), rgb01=True, name="colour-rgb01")
    # a second iteration of the colour classifier whose tags say which iteration answered
    build_colour_classifier(os.path.join(MODELS, "classifier-v2"), name="colour-v2", tag_suffix="_v2")
    build_video(os.path.join(DEMO, "conveyor.avi"), os.path.join(DEMO, "conveyor.truth.json"))
    build_crowded(os.path.join(DEMO, "crowded.avi"), os.path.join(DEMO, "crowded.truth.json"))
    print("wrote", DEMO, "and", MODELS)


if __name__ == "__main__":
    main()
