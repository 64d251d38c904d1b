"""Deep Feature Factorization (fastcam.concepts) against pytorch-grad-cam's `DeepFeatureFactorization` on a plain
torchvision resnet18 (random weights): the same NMF (scikit-learn's, random start, seed 0), so the same concepts and
maps; the head of a plain model found by running one item gives the class scores."""
import numpy as np
import pytest
import torch
from torchvision.models import resnet18
from fastcam.all import factorize_features

@pytest.fixture(scope='module')
def model_and_batch():
    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, x

def test_agrees_with_pytorch_grad_cam(model_and_batch):
    "Where pytorch-grad-cam's shift of each channel by its minimum is nothing (each channel is zero somewhere)."
    from pytorch_grad_cam import DeepFeatureFactorization
    from pytorch_grad_cam.feature_factorization.deep_feature_factorization import dff
    model, x = model_and_batch
    found = factorize_features(model, x, n_concepts=4, layer='relu')  # the stem's ReLU: [2, 64, 32, 32]
    with torch.no_grad(): A = model.relu(model.bn1(model.conv1(x)))
    assert (A.transpose(0, 1).flatten(1).amin(1) == 0).all()  # pytorch-grad-cam's channel offsets are 0 here
    concepts, maps = dff(A.numpy().copy(), n_components=4)
    np.testing.assert_allclose(found.vectors.numpy(), concepts.T, atol=1e-4)
    np.testing.assert_allclose(found.maps.numpy(), maps, atol=1e-4)
    rebuilt = torch.einsum('bkhw,kc->bchw', found.maps, found.vectors)
    assert abs((torch.linalg.norm(A - rebuilt) / torch.linalg.norm(A)).item() - found.error) < 1e-5
    peer = DeepFeatureFactorization(model, model.relu)(x, 4)[0]  # the whole class, on the same layer
    np.testing.assert_allclose(found.vectors.numpy(), peer.T, atol=1e-4)

def test_class_scores_of_a_plain_model(model_and_batch):
    "resnet18 flattens inside forward: its head is found by running one item, and the scores are fc(concept)."
    model, x = model_and_batch
    found = factorize_features(model, x, n_concepts=4, layer='layer4')
    with torch.no_grad(): expected = model.fc(found.vectors)
    np.testing.assert_allclose(found.scores.numpy(), expected.numpy(), atol=1e-4)
    assert len(found.top_classes(3)[0]) == 3

def test_a_layer_whose_head_does_not_fold(model_and_batch):
    "layer3 is followed by layer4: no affine head, so no class scores, and the reason is kept."
    model, x = model_and_batch
    model.layer2.train()  # a training flag to keep
    try: found = factorize_features(model, x, n_concepts=3, layer='layer3')
    finally: flags = [m.training for m in model.modules()]; model.eval()
    assert flags == [m is model.layer2 or any(m is c for c in model.layer2.modules()) for m in model.modules()]
    assert found.scores is None and 'CAM' in found.no_scores
    assert found.maps.shape == (2, 3, 4, 4) and (found.maps >= 0).all()
    with pytest.raises(ValueError, match="no class scores"): found.top_classes()

def test_negative_layer_is_refused(model_and_batch):
    model, x = model_and_batch
    with pytest.raises(ValueError, match="negative activations .* follows a ReLU such as"):
        factorize_features(model, x, layer='layer4.1.bn2')
