#!/usr/bin/env python3
"""calib_bench.py - time and memory of llm-quantize's calibration on the GPU.

    calib_bench.py LLM_QUANTIZE MODEL OUTDIR TIMEOUT MODE [MODE ...]

For each MODE (an llm-quantize -m mode; extra options joined by '+', e.g.
int4-awq+--group-size+64) runs

    llm-quantize -m MODE --device cuda --no-eval --calib random MODEL > /dev/null

(512 windows of 512 random token ids, llm-quantize's default counts;
CALIBBENCH_SAMPLES / CALIBBENCH_LEN set --calib-samples / --calib-len)
under TIMEOUT seconds, polls the GPU's memory in use every 0.2 s
(nvidia-smi) and writes OUTDIR/calibbench-MODE.json: wall seconds, the
calibration's own seconds (llm-quantize's "calibrated on ... in X s" line),
peak host RSS of the process (wait4's rusage), peak GPU memory in use above
what was in use before it started, and whether it finished.  Used by
tests/gpu/run.sh calibbench (a benchmark, not a test: it always exits 0
unless it cannot run at all).
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time


def gpu_used_mib():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "-i", os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]],
                             capture_output=True, text=True, timeout=10).stdout
        return int(out.strip().splitlines()[0])
    except Exception:
        return -1


def run_mode(q, model, outdir, timeout, mode):
    args = mode.split("+")
    cmd = [q, "-m", args[0], *args[1:], "--device", "cuda", "--no-eval", "--calib", "random"]
    if os.environ.get("CALIBBENCH_SAMPLES"):
        cmd += ["--calib-samples", os.environ["CALIBBENCH_SAMPLES"]]
    if os.environ.get("CALIBBENCH_LEN"):
        cmd += ["--calib-len", os.environ["CALIBBENCH_LEN"]]
    cmd.append(model)
    base = gpu_used_mib()
    peak = [base]
    done = threading.Event()

    def poll():
        while not done.is_set():
            u = gpu_used_mib()
            if u > peak[0]:
                peak[0] = u
            done.wait(0.2)

    log = os.path.join(outdir, "calibbench-%s.log" % mode.replace("+", "_"))
    t0 = time.monotonic()
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=lf)
        th = threading.Thread(target=poll, daemon=True)
        th.start()
        killed = []
        timer = threading.Timer(timeout, lambda: (killed.append(1), p.send_signal(signal.SIGKILL)))
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
    wall = time.monotonic() - t0
    done.set()
    th.join()
    text = open(log).read()
    m = re.search(r"calibrated on (\d+) tokens in windows of (\d+) on (\S+) \((.*)\), (\w+), in ([0-9.]+) s", text)
    r = {
        "bench": "calibration", "mode": mode, "command": " ".join(cmd), "model": model,
        "finished": p.returncode == 0 and not killed, "exit": p.returncode, "timed_out": bool(killed),
        "timeout_s": timeout, "wall_s": round(wall, 2),
        "peak_host_rss_mib": round(ru.ru_maxrss / 1024.0, 1),
        "gpu_used_before_mib": base, "peak_gpu_used_mib": peak[0],
        "peak_gpu_mib_above_before": peak[0] - base if base >= 0 else None,
    }
    if m:
        r.update({"calib_tokens": int(m.group(1)), "calib_window": int(m.group(2)),
                  "calib_backend": m.group(3), "calib_device": m.group(4), "calib_dtype": m.group(5),
                  "calib_s": float(m.group(6)),
                  "calib_tokens_per_s": round(int(m.group(1)) / max(float(m.group(6)), 1e-9), 1)})
    q_line = re.search(r"(\d+) weights quantized \(([^)]*)\) in ([0-9.]+) s", text)
    if q_line:
        r["quantize_cpu_s"] = float(q_line.group(3))  # clock(): CPU time of the quantization
    with open(os.path.join(outdir, "calibbench-%s.json" % mode.replace("+", "_")), "w") as f:
        json.dump(r, f, indent=1)
    print(json.dumps(r))
    sys.stdout.flush()


def main():
    if len(sys.argv) < 6:
        print(__doc__)
        return 2
    q, model, outdir, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    os.makedirs(outdir, exist_ok=True)
    for mode in sys.argv[5:]:
        run_mode(q, model, outdir, timeout, mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
