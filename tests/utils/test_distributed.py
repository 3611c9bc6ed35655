"""Distributed helpers: single-process identities and a real 2-process gloo group."""

import os
import socket

import torch
import torch.multiprocessing as mp

from maskrcnn_benchmark.utils import distributed as comm


def test_single_process_identities():
    assert comm.get_rank() == 0 and comm.get_world_size() == 1 and comm.is_main_process()
    assert comm.all_gather({"a": 1}) == [{"a": 1}]
    assert comm.broadcast_object([3]) == [3]
    reduced = comm.reduce_dict({"b": torch.tensor(2.0), "a": torch.tensor(1.0, requires_grad=True)})
    assert reduced["a"].item() == 1.0 and not reduced["a"].requires_grad
    assert comm.all_reduce_max(4.5) == 4.5
    comm.synchronize()
    assert comm.init_distributed_from_env() is False  # WORLD_SIZE unset


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank, port, queue):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    assert comm.init_distributed_from_env(backend="gloo")
    gathered = comm.all_gather({"rank": rank, "t": torch.full((2,), float(rank))})
    reduced = comm.reduce_dict({"loss": torch.tensor(float(rank + 1))})
    summed = comm.reduce_dict({"loss": torch.tensor(float(rank + 1))}, average=False)
    biggest = comm.all_reduce_max(float(rank * 10))
    sent = comm.broadcast_object("hello" if rank == 0 else None)
    queue.put((rank, [g["rank"] for g in gathered], float(gathered[1]["t"][0]), float(reduced["loss"]),
               float(summed["loss"]), biggest, sent))
    comm.cleanup_distributed()


def test_two_process_gloo_collectives():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, queue)) for rank in range(2)]
    for proc in procs:
        proc.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    for _rank, ranks, t1, mean, total, biggest, sent in results:
        assert ranks == [0, 1] and t1 == 1.0
        assert mean == 1.5 and total == 3.0 and biggest == 10.0 and sent == "hello"


def test_unwrap_model_looks_through_every_wrapper_and_nothing_else():
    from torch import nn

    from maskrcnn_benchmark.solver.ema import ModelEMA

    net = nn.Sequential(nn.Linear(2, 2))
    assert comm.unwrap_model(net) is net
    data_parallel = nn.DataParallel(net)  # the same ``.module`` attribute as DistributedDataParallel
    assert comm.unwrap_model(data_parallel) is net
    compiled_wrapper = nn.Module()
    compiled_wrapper._orig_mod = data_parallel  # torch.compile's OptimizedModule around a DDP model
    assert comm.unwrap_model(compiled_wrapper) is net
    ema = ModelEMA(data_parallel, 0.5)  # not a module: returned as it is, its averaged copy never unwrapped
    assert comm.unwrap_model(ema) is ema and isinstance(ema.module, nn.Sequential)
    holder = nn.Module()
    holder.module = "not a module"
    assert comm.unwrap_model(holder) is holder


def test_no_other_spelling_of_unwrapping_in_the_package():
    """Every DDP unwrapping goes through ``unwrap_model`` (the issue counted 14 spellings in 3 forms)."""
    import re
    from pathlib import Path

    package = Path(comm.__file__).resolve().parents[1]
    spellings = re.compile(r"""hasattr\([^)]*["']module["']\)|getattr\([^)]*["'](module|_orig_mod)["']|"""
                           r"""def _unwrap\b|\bmodel\.module\b""")
    found = [f"{path.relative_to(package)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if path.name != "distributed.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if spellings.search(line)]
    assert found == []
