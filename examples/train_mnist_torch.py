"""Spinning Up's ``train_mnist`` logger example, in PyTorch with MPI.

    python examples/train_mnist_torch.py --cpu 2 --epochs 5

An MLP trained with Adam on a generated digits-like dataset (no download), each MPI rank on
its own data, gradients averaged with :func:`spinfast.mpi_pytorch.mpi_avg_grads` and
parameters synced once with ``sync_params``. Logs with :class:`spinfast.logx.EpochLogger`
the same columns as the docs' example and saves the model with ``setup_pytorch_saver``.
"""

import time

import numpy as np


def train_mnist(steps_per_epoch=100, epochs=5, lr=1e-3, layers=2, hidden_size=64,
                logger_kwargs=dict(), save_freq=1, seed=0):
    import torch
    from _common import make_digits
    from torch import nn

    from spinfast.logx import EpochLogger
    from spinfast.mpi_pytorch import mpi_avg_grads, setup_pytorch_for_mpi, sync_params
    from spinfast.mpi_tools import proc_id

    setup_pytorch_for_mpi()
    logger = EpochLogger(**logger_kwargs)
    logger.save_config(locals())

    x_train, y_train = make_digits(seed=seed + 1000 * proc_id())   # each rank its own data
    x_train, y_train = torch.as_tensor(x_train), torch.as_tensor(y_train, dtype=torch.long)
    rng = np.random.default_rng(seed + proc_id())
    torch.manual_seed(seed)

    sizes = [64] + [hidden_size] * layers + [10]
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods)
    sync_params(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    logger.setup_pytorch_saver(model)

    start_time = time.time()
    for epoch in range(epochs):
        for t in range(steps_per_epoch):
            idxs = torch.as_tensor(rng.integers(0, len(x_train), 32))
            logits = model(x_train[idxs])
            loss = nn.functional.cross_entropy(logits, y_train[idxs])
            acc = (logits.argmax(dim=1) == y_train[idxs]).float().mean()
            opt.zero_grad()
            loss.backward()
            mpi_avg_grads(model)
            opt.step()
            logger.store(Loss=loss.item(), Acc=acc.item())

        if (epoch % save_freq == 0) or (epoch == epochs - 1):
            logger.save_state(state_dict=dict(), itr=None)

        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Acc", with_min_and_max=True)
        logger.log_tabular("Loss", average_only=True)
        logger.log_tabular("TotalGradientSteps", (epoch + 1) * steps_per_epoch)
        logger.log_tabular("Time", time.time() - start_time)
        logger.dump_tabular()


if __name__ == "__main__":
    from _common import main

    main(train_mnist, __doc__.splitlines()[0], "train_mnist_torch")
