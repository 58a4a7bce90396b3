from PIL import Image

from dcgan.runlog import MetricWindow, RunLog, plot_losses, read_metrics


def test_metrics_csv_grows_columns_truncates_on_resume_and_plots(tmp_path):
    log = RunLog(tmp_path / "metrics.csv")
    for step in range(1, 6):
        log.log({"step": step, "epoch": 0, "d_loss": 1.0 / step, "g_loss": float(step)})
    log.log({"step": 6, "epoch": 0, "d_loss": 0.1, "g_loss": 6.0, "fid": 12.5})  # a new column appears
    rows = read_metrics(tmp_path / "metrics.csv")
    assert len(rows) == 6 and rows[-1]["fid"] == "12.5" and rows[0]["fid"] == ""
    log.truncate_after(3)  # a resumed run rewrites what came after its checkpoint
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.csv")] == ["1", "2", "3"]
    assert plot_losses(tmp_path / "metrics.csv", tmp_path / "losses.png")
    assert Image.open(tmp_path / "losses.png").size == (800, 400)


def test_metric_window_averages_between_rows_and_starts_again():
    now = [10.0]
    window = MetricWindow(clock=lambda: now[0])
    for d in (1.0, 2.0, 6.0):
        window.add({"d_loss": d, "r1": 5.0})
    now[0] = 12.0  # three steps of 8 images in 2 s
    row = window.row(8, hidden={"r1"})
    assert row == {"d_loss": 3.0, "images_per_sec": 12.0}
    window.add({"d_loss": 4.0, "r1": 1.0})
    now[0] = 13.0
    assert window.row(8, reduce=lambda v: 2 * v) == {"d_loss": 8.0, "r1": 2.0, "images_per_sec": 8.0}
