"""Progress without a terminal (issue 14): a header naming the run, one plain line per child or
epoch, a line at least every heartbeat, and rates that count only this process's work."""
import re
import time
from pathlib import Path

from torchnas.terminal import Printer


def test_plain_progress_lines_header_heartbeat_and_a_rate_without_replays(capsys):
    p = Printer(plain=True, heartbeat=0.3)
    p("run", {"path": Path("runs/x"), "resumed": True, "preset": "nas-cnn-tiny", "strategy": "reinforce",
              "budget": 10, "device": "cpu"})
    # resumed with 4 children logged and 3 more to replay: none of those 7 counts towards the rate
    p("start", {"task": "search", "label": "reinforce on nas-cnn", "total": 10, "completed": 4, "best": None,
                "replay": 3})
    for k in (5, 6, 7):                                      # the replayed ones come back at once
        p("progress", {"completed": k, "best": {"reward": 0.5}})
    p("step", {"done": 30, "total": 120, "items": 3840, "unit": "img", "seconds": 2.0})
    time.sleep(0.8)                                          # a long child: the heartbeat speaks
    p("progress", {"completed": 8, "best": {"reward": 0.6}})
    p("end", {"task": "search"})
    out, err = capsys.readouterr()
    assert out.strip() == "resuming runs/x  (preset nas-cnn-tiny, strategy reinforce, budget 10, device cpu)"
    lines = err.strip().splitlines()
    assert re.search(r"reinforce on nas-cnn 4/10 best - elapsed", lines[0])
    assert [int(re.search(r" (\d+)/10 ", x).group(1)) for x in lines if "still running" not in x] == [4, 5, 6, 7, 8]
    assert any("7/10" in x and "(still running, step 30/120, 1,920 img/s)" in x for x in lines)
    assert "eta -" in lines[3] and "0.0 q/min" in lines[3]             # replays: no rate, no ETA
    last = lines[-1]
    assert re.search(r"8/10 best 0.6000 \d+\.\d q/(s|min) elapsed 00:00:0\d eta 00:00:0\d", last), last


def test_plain_progress_for_seeds_and_searches_is_one_line_each_with_a_rate_and_an_eta(capsys):
    """``bench nb201`` (seeds, many a second) and ``bench scale`` (searches, minutes each)."""
    p = Printer(progress=True, plain=True)
    p("seeds", {"completed": 3, "total": 10, "seconds": 1.5})
    p("seeds", {"completed": 1, "total": 3, "seconds": 120.0, "what": "searches"})
    p("seeds", {"completed": 3, "total": 3, "seconds": 300.0, "what": "searches"})
    assert capsys.readouterr().err.splitlines() == ["seeds 3/10  2.0/s  eta 4s", "searches 1/3  120.0 s each  eta 240s",
                                                    "searches 3/3  100.0 s each  eta 0s"]
