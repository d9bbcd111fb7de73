"""Drawing the synthetic faces: people (attributes, ages) → appearance parameters → rendered uint8 images.

`people` samples who is drawn, `appearance` every per-person drawing parameter, `canvas` the pixel geometry and
anti-aliased drawing primitives, `features` each part of the face and `render` composites whole images. The
dataset built from them, with its cache, is facebias.data.synthetic.
"""
