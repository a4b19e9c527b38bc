"""Recipes: the per-dataset defaults of `clearconv train`, and training with them."""

import json

import numpy as np
import pytest

from clearconv import optim
from clearconv.data import Dataset, load_dataset, random_shift
from clearconv.errors import ClearConvError
from clearconv.train import LearningRateScheduler, Recipe, recipe, zoo
from clearconv.train.callbacks import BackupAndRestore
from clearconv.train.recipes import RECIPES


@pytest.mark.parametrize(("dataset", "model", "epochs", "lr", "schedule", "augment"), [
    ("digits", "digits-cnn", 20, 3e-3, None, ()),
    # issue 13, item 9: the batch-norm CNN with augmentation beats small-image-cnn
    ("mnist", "mnist-bn-cnn", 15, 2e-3, "cosine", ("shift",)),
    ("fashion-mnist", "mnist-bn-cnn", 15, 1e-3, "cosine", ("shift", "flip")),
    ("kmnist", "small-image-cnn", 10, 1e-3, "cosine", ()),
    ("cifar10", "small-image-cnn", 20, 1e-3, "cosine", ()),
    ("folder", "small-image-cnn", 20, 1e-3, "cosine", ()),
])
def test_the_defaults_are_the_documented_ones(dataset, model, epochs, lr, schedule, augment):
    r = recipe(dataset)
    assert (r.dataset, r.model, r.epochs, r.lr, r.schedule) == (dataset, model, epochs, lr,
                                                                schedule)
    assert (r.optimizer, r.batch_size, r.augment, r.val_split) == ("adam", 64, augment, 0.0)
    # the module's table says the same
    from clearconv.train import recipes

    row = next(line.split() for line in recipes.__doc__.splitlines()
               if line.split()[:1] == [dataset])
    assert row[1:3] == [model, str(epochs)]
    assert (" ".join(row).count("**") == 2) == bool(augment)     # bold: on by default


def test_every_dataset_of_the_command_line_has_a_recipe():
    from clearconv.data import DATASET_NAMES

    assert set(RECIPES) == set(DATASET_NAMES)


def test_augment_true_is_the_dataset_augmentation():
    assert recipe("mnist", augment=True).augment == ("shift",)
    assert recipe("cifar10", augment=True).augment == ("shift", "flip")
    assert recipe("kmnist", augment=True).augment == ("shift",)
    assert recipe("fashion-mnist", augment=True).augment == ("shift", "flip")
    assert recipe("cifar10", augment=False).augment == ()
    assert recipe("digits", augment=["flip"]).augment == ("flip",)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_augment_false_switches_the_default_augmentation_off(dataset):
    assert recipe(dataset).augment
    r = recipe(dataset, augment=False)
    assert r.augment == () and r.build_augment() is None
    assert r.model == "mnist-bn-cnn" and r.epochs == 15          # nothing else changes
    assert recipe(dataset, augment=None) == recipe(dataset)      # None: the default
    assert recipe(dataset, model="small-image-cnn").augment == recipe(dataset).augment


def test_an_autoencoder_drops_the_default_augmentation_but_not_an_asked_one():
    assert recipe("mnist", model="conv-autoencoder").augment == ()
    with pytest.raises(ClearConvError, match="reconstructs its input"):
        recipe("mnist", model="conv-autoencoder", augment=["shift"])


def test_changes_override_the_defaults_and_leave_the_table_alone():
    r = recipe("mnist", epochs=2, lr=1e-2, optimizer="sgd", batch_size=8, val_split=0.1)
    assert (r.epochs, r.lr, r.optimizer, r.batch_size, r.val_split) == (2, 1e-2, "sgd", 8, 0.1)
    assert recipe("mnist").epochs == 15
    assert r.replace(schedule=None).schedule is None


@pytest.mark.parametrize(("changes", "pattern"), [
    ({"model": "resnet"}, "unknown model 'resnet'; known: digits-cnn, small-image-cnn"),
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'; known: sgd, momentum"),
    ({"schedule": "linear"}, "unknown schedule 'linear'; known: cosine"),
    ({"augment": ["rotate"]}, "unknown augmentation 'rotate'; known: shift, flip"),
    ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
    ({"epochs": 2.5}, "epochs must be an int >= 1, got 2.5"),
    ({"batch_size": -1}, "batch_size must be an int >= 1, got -1"),
    ({"lr": 0.0}, r"lr must be a number > 0, got 0.0"),
    ({"lr": "fast"}, r"lr must be a number > 0, got 'fast'"),
    ({"val_split": 1.0}, r"val_split must be a number in \[0, 1\), got 1.0"),
])
def test_bad_changes_are_refused_naming_the_value(changes, pattern):
    with pytest.raises(ClearConvError, match=pattern):
        recipe("mnist", **changes)


def test_an_unknown_dataset_names_the_known_ones():
    with pytest.raises(ClearConvError, match="no recipe for dataset 'svhn'; recipes exist for "
                                             "digits, mnist"):
        recipe("svhn")


def test_a_recipe_goes_through_json_and_back():
    r = recipe("cifar10", augment=True, epochs=3)
    back = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and back.augment == ("shift", "flip")


def test_from_dict_names_missing_and_unexpected_keys():
    data = recipe("mnist").to_dict()
    del data["lr"]
    data["momentum"] = 0.9
    with pytest.raises(ClearConvError, match=r"missing keys \['lr'\], unexpected keys "
                                             r"\['momentum'\]"):
        Recipe.from_dict(data)


@pytest.mark.parametrize(("model", "shape", "classes", "pattern"), [
    ("digits-cnn", (1, 28, 28), 10,
     r"digits-cnn model takes 1x8x8 inputs and 10 classes, got \(1, 28, 28\) and 10"),
    ("lenet5", (1, 28, 28), 5,
     r"lenet5 model takes 1x28x28 inputs and 10 classes, got \(1, 28, 28\) and 5"),
    ("mnist-cnn", (1, 28, 24), 10, "square images, got 28x24"),
])
def test_a_model_that_does_not_fit_the_data_is_refused_naming_the_shapes(model, shape, classes,
                                                                          pattern):
    with pytest.raises(ClearConvError, match=pattern):
        recipe("mnist", model=model).build_model(shape, classes, seed=0)


def test_build_model_gives_the_zoo_model_with_the_seed():
    a = recipe("digits").build_model((1, 8, 8), 10, seed=3)
    b = zoo.digits_cnn(rng=3)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[k], v)
    small = recipe("mnist", model="small-image-cnn").build_model((3, 16, 16), 4, seed=0)
    assert small.input_shape == (3, 16, 16) and small.predict(np.zeros((2, 3, 16, 16))).shape \
        == (2, 4)
    assert recipe("mnist", model="mnist-cnn").build_model((1, 12, 12), 3).input_shape == (1, 12, 12)


def tiny_images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.random((n, 1, 12, 12), dtype=np.float32) * 0.2
    x[np.arange(n), 0, 3 * y, :] = 1.0
    return Dataset("tiny", x, y, x[:8], y[:8], ("a", "b", "c", "d"), "test images")


def test_train_is_the_fit_a_user_would_write_by_hand():
    ds = tiny_images()
    r = recipe("mnist", model="small-image-cnn", epochs=3, batch_size=8, augment=True,
               val_split=0.25)
    model, history = r.train(ds, seed=4, verbose=0)
    assert model.classes == ["a", "b", "c", "d"]

    order = np.random.default_rng(4).permutation(40)      # train_val_split's rule
    train_idx, val_idx = order[10:], order[:10]
    by_hand = zoo.small_image_cnn((1, 12, 12), 4, rng=4)
    opt = optim.Adam(by_hand.parameters(), lr=2e-3)
    sched = optim.CosineAnnealingLR(opt, T_max=3)
    hand = by_hand.fit(ds.x_train[train_idx], ds.y_train[train_idx], epochs=3, batch_size=8,
                       optimizer=opt, validation_data=(ds.x_train[val_idx], ds.y_train[val_idx]),
                       callbacks=[LearningRateScheduler(sched)], verbose=0, seed=4,
                       augment=random_shift(2))
    for k, v in by_hand.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)
    assert history.history["lr"] == hand.history["lr"] == [sched.lr_at(e) for e in (1, 2, 3)]
    assert history.history["val_loss"] == hand.history["val_loss"]


def test_fit_with_a_backup_dir_keeps_the_recipe_and_the_options(tmp_path):
    ds = tiny_images()
    r = recipe("mnist", epochs=1, batch_size=16)
    model = r.build_model(ds.input_shape, 4, seed=0)
    r.fit(model, ds.x_train, ds.y_train, seed=2, verbose=0, backup_dir=tmp_path,
          options={"data": {"data_dir": "somewhere"}})
    saved = BackupAndRestore.saved_options(tmp_path)
    assert saved == {"recipe": r.to_dict(), "seed": 2, "data": {"data_dir": "somewhere"}}
    assert Recipe.from_dict(saved["recipe"]) == r


def test_the_digits_recipe_trains_on_the_embedded_digits():
    ds = load_dataset("digits")
    model, history = recipe("digits", epochs=2).train(ds, seed=0, verbose=0)
    assert history.epochs == 2 and "lr" not in history.history
    assert model.evaluate(ds.x_test, ds.y_test)["accuracy"] > 0.5


@pytest.mark.parametrize(("dataset", "shape", "classes"), [
    ("digits", (1, 8, 8), 10), ("mnist", (1, 28, 28), 10), ("fashion-mnist", (1, 28, 28), 10),
    ("cifar10", (3, 32, 32), 10), ("folder", (3, 16, 24), 5),
])
def test_zoo_default_model_is_the_recipe_model(dataset, shape, classes):
    a = zoo.default_model(dataset, shape, classes, rng=1)
    b = recipe(dataset).build_model(shape, classes, seed=1)
    assert a.get_config() == b.get_config()
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)


def test_a_last_batch_of_one_sample_is_refused_before_training_with_batch_norm_1d():
    """BatchNorm1D cannot take a variance of one sample: the run is refused up front, not
    at the end of its first epoch; a model without BatchNorm1D trains such a batch."""
    from clearconv.train.loop import _check_last_batch
    from clearconv.train.zoo import mnist_bn_cnn, small_image_cnn

    bn = mnist_bn_cnn(rng=0, size=8)
    with pytest.raises(ClearConvError, match=r"last batch .* hold 1 of the 65 samples"):
        _check_last_batch(bn, 65, 64, 1)
    with pytest.raises(ClearConvError, match=r"on 2 processes"):
        _check_last_batch(bn, 131, 64, 2)        # 3 over: shares 2 and 1
    _check_last_batch(bn, 66, 64, 1)             # 2 over
    _check_last_batch(bn, 132, 64, 2)            # 4 over: 2 each
    _check_last_batch(bn, 131, 64, 2, synced=True)   # synchronised: 3 normalised as one
    _check_last_batch(small_image_cnn((1, 8, 8), 10, rng=0), 65, 64, 1)
    x = np.zeros((5, 1, 8, 8), np.float32)
    with pytest.raises(ClearConvError, match="BatchNorm1D needs at least 2"):
        bn.fit(x, np.zeros(5, np.int64), epochs=1, batch_size=4, verbose=0)
