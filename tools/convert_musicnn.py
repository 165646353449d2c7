"""Convert musicnn's Million Song Dataset model (TF1 checkpoint) into the Keras weights genre-cnn ships.

Usage (from the repository root; needs TensorFlow, not the musicnn package itself):

    pip download --no-deps musicnn==0.1.0 -d /tmp/musicnn     # do not pip install it: it pins numpy<1.17
    python tools/convert_musicnn.py /tmp/musicnn/musicnn-0.1.0-py3-none-any.whl

Writes
  genre_cnn/models/backbones/musicnn_msd.weights.h5   the Keras port's weights (float32)
  genre_cnn/models/backbones/MUSICNN-LICENSE.txt      the ISC notice of the original
  tests/fixtures/musicnn_reference.npz         a few generated clips' front ends, with the tags and
                                               embeddings the *original* TF1 graph computes for them
and checks that the port reproduces the original's outputs.

Only MSD_musicnn is converted: the MagnaTagATune models' training data is licensed for
non-commercial use only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genre_cnn.models.musicnn import (  # noqa: E402
    NOTICE_FILE,
    PATCH_FRAMES,
    SR,
    WEIGHTS_FILE,
    build_musicnn,
    musicnn_front_end,
    musicnn_patches,
)

FIXTURE = ROOT / "tests" / "fixtures" / "musicnn_reference.npz"

#: TF1 default layer names (creation order in musicnn/models.py) -> the port's layer names.
CONVOLUTIONS = {
    "conv2d": "timbral_74_conv", "conv2d_1": "timbral_77_conv", "conv2d_2": "temporal_128_conv",
    "conv2d_3": "temporal_64_conv", "conv2d_4": "temporal_32_conv", "conv2d_5": "mid1_conv",
    "conv2d_6": "mid2_conv", "conv2d_7": "mid3_conv", "dense": "penultimate_dense", "dense_1": "tags",
}
BATCH_NORMS = {
    "batch_normalization": "input_bn", "batch_normalization_1": "timbral_74_bn",
    "batch_normalization_2": "timbral_77_bn", "batch_normalization_3": "temporal_128_bn",
    "batch_normalization_4": "temporal_64_bn", "batch_normalization_5": "temporal_32_bn",
    "batch_normalization_6": "mid1_bn", "batch_normalization_7": "mid2_bn", "batch_normalization_8": "mid3_bn",
    "batch_normalization_9": "pool_bn", "batch_normalization_10": "penultimate_bn",
}


def interleaved_to_blocks(values: np.ndarray) -> np.ndarray:
    """Reorder the original's pooled features [max0, mean0, max1, mean1, ...] to [max..., mean...]."""
    return np.concatenate([values[0::2], values[1::2]])


def convert(checkpoint: Path):
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint) + "/")
    model = build_musicnn()
    for tf_name, layer_name in CONVOLUTIONS.items():
        kernel, bias = reader.get_tensor(f"{tf_name}/kernel"), reader.get_tensor(f"{tf_name}/bias")
        if tf_name == "dense":
            kernel = interleaved_to_blocks(kernel)
        model.get_layer(layer_name).set_weights([kernel, bias])
    for tf_name, layer_name in BATCH_NORMS.items():
        values = [reader.get_tensor(f"{tf_name}/{part}") for part in ("gamma", "beta", "moving_mean", "moving_variance")]
        if tf_name == "batch_normalization_9":
            values = [interleaved_to_blocks(v) for v in values]
        model.get_layer(layer_name).set_weights(values)
    ported = sum(int(np.prod(w.shape)) for w in model.weights)
    print(f"ported {ported} parameters from {checkpoint}")
    return model


def reference_clips() -> np.ndarray:
    """Six 3-second clips: chords, a sweep, noise bursts, a drum-like pulse, a mix, near silence."""
    rng = np.random.default_rng(2019)
    t = np.arange(3 * SR) / SR
    clips = [
        sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) / 3,
        np.sin(2 * np.pi * (200 + 1500 * t / 3) * t),
        rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 4 * t) > 0),
        np.exp(-20 * (t % 0.5)) * np.sin(2 * np.pi * 60 * t) + 0.05 * rng.standard_normal(len(t)),
        0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(len(t)) * np.exp(-10 * (t % 0.25)),
        1e-3 * rng.standard_normal(len(t)),
    ]
    return np.stack([0.5 * c / max(np.abs(c).max(), 1e-9) if i < 5 else c for i, c in enumerate(clips)])


def original_outputs(checkpoint: Path, patches: np.ndarray):
    """Tags and embeddings of ``patches`` computed by the original TF1 graph."""
    import tensorflow as tf

    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((checkpoint / ".meta").read_bytes())
    for node in meta.graph_def.node:  # attributes written by TF 1.12 that TF 2 refuses
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        saver.restore(session, str(checkpoint) + "/")
        tags, embedding = session.run(
            ["model/Sigmoid:0", "model/batch_normalization_10/batchnorm/add_1:0"],
            feed_dict={"model/Placeholder:0": patches, "model/Placeholder_2:0": False},
        )
    return tags, embedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="musicnn-0.1.0-py3-none-any.whl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as wheel:
        members = [m for m in wheel.namelist() if m.startswith("musicnn/MSD_musicnn/")]
        licence = [m for m in wheel.namelist() if Path(m).name.upper().startswith("LICENSE")]
        wheel.extractall(tmp, members + licence)
        checkpoint = Path(tmp) / "musicnn" / "MSD_musicnn"
        model = convert(checkpoint)
        patches = np.concatenate([musicnn_patches(musicnn_front_end(clip)) for clip in reference_clips()])
        assert patches.shape[1] == PATCH_FRAMES
        tags, embedding = original_outputs(checkpoint, patches)
        notice = (Path(tmp) / licence[0]).read_text() if licence else None
    ported = model.predict(patches, verbose=0)
    error_tags = float(np.abs(ported["tags"] - tags).max())
    error_embedding = float(np.abs(ported["embedding"] - embedding).max())
    print(f"largest difference to the original graph: tags {error_tags:.2e}, embedding {error_embedding:.2e}")
    if error_tags > 1e-4 or error_embedding > 1e-3:
        sys.exit("the port does not reproduce the original; nothing written")
    WEIGHTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(WEIGHTS_FILE)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, patches=patches.astype(np.float32), tags=tags.astype(np.float32),
                        embedding=embedding.astype(np.float32))
    if notice is not None:
        NOTICE_FILE.write_text(
            f"{WEIGHTS_FILE.name} holds the weights of musicnn's MSD_musicnn model (trained on the Million Song\n"
            "Dataset tags), converted to Keras by tools/convert_musicnn.py from the musicnn 0.1.0 wheel on PyPI\n"
            "(https://github.com/jordipons/musicnn). They are distributed under musicnn's ISC licence:\n\n" + notice
        )
    print(f"wrote {WEIGHTS_FILE.relative_to(ROOT)} ({WEIGHTS_FILE.stat().st_size / 1e6:.1f} MB), "
          f"{FIXTURE.relative_to(ROOT)}, and {'the notice' if notice else 'NO licence notice (write it by hand)'}")


if __name__ == "__main__":
    main()
