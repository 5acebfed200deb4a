"""PyTorch's zero-shot answer for a SigLIP bundle the harness exported: the reference the families test
holds clip-eval's eval, classify and retrieval to.

    /usr/bin/python3 siglip-zero-shot.py HARNESS_DIR BUNDLE SPM_MODEL JOB.json

The job is {"family": "siglip"|"siglip2", "images": [PATH...], "texts": [[PROMPT...] per class]}: each
class's prompts are encoded as the text tower receives them (siglip_text.encoder_input), normalised,
averaged and normalised again; images are preprocessed as the bundle's preprocessor_config.json says
(preprocess_ref.transform_from_hf_config). Prints one JSON line per image: {"top1": class index,
"logits": exp(logit_scale) * cosine + logit_bias per class}. The model is rebuilt from config.json's
"harness" record (size and seed), the same weights export_siglip.py wrote.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import preprocess_ref  # noqa: E402
import siglip_ref  # noqa: E402
import siglip_text  # noqa: E402


def main():
    bundle, spm_model, job_path = sys.argv[2], sys.argv[3], sys.argv[4]
    with open(f'{bundle}/config.json', encoding='utf-8') as handle:
        config = json.load(handle)
    with open(f'{bundle}/preprocessor_config.json', encoding='utf-8') as handle:
        transform = preprocess_ref.transform_from_hf_config(json.load(handle))
    with open(job_path, encoding='utf-8') as handle:
        job = json.load(handle)
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    harness = config['harness']
    model = siglip_ref.build_model(harness['size'], config['text_config']['vocab_size'], harness['seed']).eval()
    with torch.no_grad():
        classes = []
        for prompts in job['texts']:
            ids = torch.tensor([siglip_text.encoder_input(p, sp, job['family']) for p in prompts])
            embeddings = F.normalize(model.get_text_features(ids), dim=-1)
            classes.append(F.normalize(embeddings.mean(dim=0), dim=-1))
        text = torch.stack(classes)
        pixels = []
        for path in job['images']:
            with Image.open(path) as image:
                pixels.append(transform(image))
        images = F.normalize(model.get_image_features(torch.stack(pixels)), dim=-1)
        logits = images @ text.T * model.logit_scale.exp() + model.logit_bias
    for row in logits:
        print(json.dumps({'top1': int(row.argmax()), 'logits': [float(v) for v in row]}))


main()
