"""The text tutorial's recipe at several seeds: Grad-CAM's and gradient x embedding's pointing game over tokens.

    python tools/text_pointing_seeds.py [--seeds 0 1 2] [--epochs 20] [--size 64]

Each seed makes `make_sentiment(1000, 300, seed=seed)`, trains the tutorial's one-layer AWD_LSTM (fastai's dropouts,
`--size` units) for `--epochs` epochs at 1e-2 after `set_seed(seed)`, and scores the maps of the 300 validation
reviews (their true classes) with `token_pointing_game`, as the tutorial does. One torch thread; minutes on a shared CPU."""
import argparse, json, time, warnings
import torch
from fastai.text.all import AWD_LSTM, awd_lstm_clas_config, text_classifier_learner, accuracy, set_seed
from fastcam.all import make_sentiment, sentiment_dls, grad_x_embedding, token_pointing_game

def run(seed: int, epochs: int, size: int, score) -> dict:
    data = make_sentiment(1000, 300, seed=seed)
    valid = data.splits[1]
    set_seed(seed)
    config = dict(awd_lstm_clas_config, emb_sz=size, n_hid=size, n_layers=1)
    learn = text_classifier_learner(sentiment_dls(data), AWD_LSTM, pretrained=False, config=config, metrics=accuracy)
    start = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2)
    fit = time.time() - start
    texts, deciding = [data.texts[i] for i in valid], [data.positions[i] for i in valid]
    y = torch.from_numpy(data.y[valid])
    out = dict(seed=seed, fit_s=round(fit, 1))
    for name, method in [('gradcam', 'gradcam'), ('grad_x_embedding', grad_x_embedding(learn.model))]:
        res, x = learn.cam_result(texts, cls=y, method=method)
        out[name] = round(score(res.maps, deciding, x != learn.model[0].pad_idx), 3)
    with learn.no_bar(): out['accuracy'] = round(learn.validate()[1], 3)
    return out

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--size', type=int, default=64)
    a = p.parse_args()
    warnings.filterwarnings('ignore')
    torch.set_num_threads(1)
    score = token_pointing_game
    for seed in a.seeds: print(json.dumps(dict(epochs=a.epochs, size=a.size, **run(seed, a.epochs, a.size, score))),
                               flush=True)

if __name__ == '__main__': main()
