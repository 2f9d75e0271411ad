#!/usr/bin/env python3
"""Checks the cluster launchers in deploy/ as far as can be done without a cluster.

deploy/k8s/mpijob.yaml: parses as a Kubeflow MPIJob; the launcher runs `mpirun -np N
crossdenoise train CONFIG --out RUNS` with N the workers' replicas times slotsPerWorker;
CONFIG is a shipped config mounted where the command reads it, RUNS a mounted volume;
launcher and workers name the same image, which deploy/k8s/Dockerfile builds with the
`mpi` feature; every container states CPU and memory limits, and the workers a GPU when
the backend is a CUDA one.
deploy/slurm/train.sbatch: bash parses it; its #SBATCH directives ask for nodes, tasks
and a time limit; it trains through `srun --mpi=...` with a config that exists.

Usage: check_deploy.py [DEPLOY_DIR] [CONFIGS_DIR]. Prints what it checked; exits 1 naming
the first field at fault.
"""
import re
import subprocess
import sys
from pathlib import Path

import yaml


class Fault(Exception):
    pass


def need(cond, where, what):
    if not cond:
        raise Fault(f"{where}: {what}")


def check_mpijob(path: Path, configs: Path, dockerfile: Path):
    doc = yaml.safe_load(path.read_text())
    need(isinstance(doc, dict), path, "not a YAML mapping")
    need(str(doc.get("apiVersion", "")).startswith("kubeflow.org/"), f"{path}: apiVersion",
         f"is {doc.get('apiVersion')!r}, not kubeflow.org/...")
    need(doc.get("kind") == "MPIJob", f"{path}: kind", f"is {doc.get('kind')!r}, not MPIJob")
    spec = doc.get("spec") or {}
    replicas = spec.get("mpiReplicaSpecs") or {}
    for role in ("Launcher", "Worker"):
        need(role in replicas, f"{path}: spec.mpiReplicaSpecs", f"has no {role}")
    launcher, worker = replicas["Launcher"], replicas["Worker"]
    need(launcher.get("replicas") == 1, f"{path}: Launcher.replicas", "must be 1")
    workers = worker.get("replicas")
    need(isinstance(workers, int) and workers >= 1, f"{path}: Worker.replicas",
         "must be a positive integer")
    slots = spec.get("slotsPerWorker", 1)

    def container(role, spec):
        cs = (((spec.get("template") or {}).get("spec") or {}).get("containers")) or []
        need(len(cs) == 1, f"{path}: {role}.template.spec.containers", "must hold one container")
        return cs[0], spec["template"]["spec"]

    lc, _ = container("Launcher", launcher)
    wc, wspec = container("Worker", worker)
    image = lc.get("image")
    need(image, f"{path}: Launcher image", "missing")
    need(wc.get("image") == image, f"{path}: Worker image",
         f"{wc.get('image')!r} is not the launcher's {image!r}")

    cmd = [str(c) for c in lc.get("command") or []]
    where = f"{path}: Launcher command"
    need(cmd and cmd[0] == "mpirun", where, "must start with mpirun")
    need("-np" in cmd, where, "names no -np")
    np_ = int(cmd[cmd.index("-np") + 1])
    need(np_ == workers * slots, where,
         f"-np {np_} is not Worker.replicas x slotsPerWorker = {workers * slots}")
    need("crossdenoise" in cmd, where, "does not run crossdenoise")
    args = cmd[cmd.index("crossdenoise") + 1:]
    need(args[:1] == ["train"] and len(args) >= 2, where, "is not `crossdenoise train CONFIG`")
    config = args[1]
    need("--out" in args, where, "names no --out")
    out = args[args.index("--out") + 1]
    backend = args[args.index("--backend") + 1] if "--backend" in args else "flex"

    mounts = {m["mountPath"]: m["name"] for m in wc.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in wspec.get("volumes") or []}
    need(out in mounts, f"{path}: Worker volumeMounts", f"nothing is mounted at --out {out}")
    run_volume = volumes.get(mounts[out]) or {}
    need("persistentVolumeClaim" in run_volume, f"{path}: volume {mounts[out]}",
         "the run folder must be a shared persistent volume")
    config_dir = str(Path(config).parent)
    need(config_dir in mounts, f"{path}: Worker volumeMounts",
         f"nothing is mounted where the config {config} is read")
    need((configs / Path(config).name).is_file(), where,
         f"{Path(config).name} is not a config in {configs}")

    for role, c in (("Launcher", lc), ("Worker", wc)):
        limits = (c.get("resources") or {}).get("limits") or {}
        for key in ("cpu", "memory"):
            need(key in limits, f"{path}: {role} resources.limits", f"states no {key}")
    if "cuda" in backend:
        limits = wc["resources"]["limits"]
        need("nvidia.com/gpu" in limits, f"{path}: Worker resources.limits",
             f"backend {backend} needs nvidia.com/gpu")

    text = dockerfile.read_text()
    need(re.search(r"--features[= ][^\n]*\bmpi\b", text), f"{dockerfile}",
         "does not build the `mpi` feature")
    need(image in text, f"{dockerfile}", f"does not say it builds {image}")
    need("openmpi-bin" in text and "openssh-server" in text, f"{dockerfile}",
         "the image needs Open MPI and an SSH server for the MPI Operator")
    print(f"ok {path}: MPIJob, {workers} workers x {slots} slots = -np {np_}, image {image}, "
          f"config {config}, runs on volume {mounts[out]}, backend {backend}")


def check_sbatch(path: Path, configs: Path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    directives = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"^#SBATCH\s+--([a-z-]+)(?:=(\S+))?", text, re.M)
    )
    for key in ("job-name", "nodes", "ntasks-per-node", "time"):
        need(key in directives, f"{path}: #SBATCH", f"no --{key}")
    srun = [line for line in text.splitlines() if line.strip().startswith("srun ")]
    need(len(srun) == 1, f"{path}", "must start the ranks with one srun line")
    need("--mpi=" in srun[0], f"{path}: srun", "names no --mpi= plugin")
    default = re.search(r'CONFIG="\$\{CONFIG:-([^}]+)\}"', text)
    need(default, f"{path}", "has no default CONFIG")
    need((configs.parent / default.group(1)).is_file(), f"{path}: CONFIG",
         f"{default.group(1)} does not exist")
    print(f"ok {path}: {directives['nodes']} nodes x {directives['ntasks-per-node']} tasks, "
          f"config {default.group(1)}")


def main():
    deploy = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("deploy")
    configs = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("configs")
    try:
        check_mpijob(deploy / "k8s/mpijob.yaml", configs, deploy / "k8s/Dockerfile")
        check_sbatch(deploy / "slurm/train.sbatch", configs)
    except Fault as fault:
        print(f"error: {fault}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
