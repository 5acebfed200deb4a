"""Reference preprocessing for the tests: torchvision's PIL pipeline (Resize, CenterCrop, convert('RGB'),
ToTensor, Normalize), spelled out on Pillow and numpy so that it needs only Debian's python3-pil and
python3-numpy. torchvision does exactly these steps on a PIL image: Resize(N) makes the shorter side N
and the longer int(N * long / short), Resize((N, N)) squashes, CenterCrop takes round((size - crop) / 2)
(Python's round), ToTensor divides by 255 in float32 and Normalize subtracts and divides in float32.

Usage: python3 pillow-preprocess.py JOB.json, where the job is
{"out": DIR, "items": [{"image": PATH, "name": NAME, "config": {imageSize, resizeMode, resizeSize, mean, std, resample}}]};
writes DIR/NAME.f32, raw little-endian float32 [3, imageSize, imageSize].
"""
import json
import sys

import numpy as np
from PIL import Image

RESAMPLE = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR, 'nearest': Image.NEAREST}


def preprocess(path, config):
    image = Image.open(path)
    size = config['resizeSize']
    if config['resizeMode'] == 'squash':
        target = (size, size)
    else:
        width, height = image.size
        target = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    image = image.resize(target, RESAMPLE[config['resample']])
    crop = config['imageSize']
    left = int(round((image.width - crop) / 2.0))
    top = int(round((image.height - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop)).convert('RGB')
    pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255)
    mean = np.asarray(config['mean'], dtype=np.float32).reshape(1, 1, 3)
    std = np.asarray(config['std'], dtype=np.float32).reshape(1, 1, 3)
    return ((pixels - mean) / std).astype('<f4').transpose(2, 0, 1)


def main():
    with open(sys.argv[1], encoding='utf-8') as handle:
        job = json.load(handle)
    for item in job['items']:
        np.ascontiguousarray(preprocess(item['image'], item['config'])).tofile(f"{job['out']}/{item['name']}.f32")


main()
