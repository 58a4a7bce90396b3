from PIL import Image

from dcgan.runlog import RunLog, plot_losses, read_metrics


def test_metrics_csv_grows_columns_truncates_on_resume_and_plots(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    for step in range(1, 6):
        log.log({"step": step, "epoch": 0, "d_loss": 1.0 / step, "g_loss": float(step)})
    log.log({"step": 6, "epoch": 0, "d_loss": 0.1, "g_loss": 6.0, "fid": 12.5})  # a new column appears
    rows = read_metrics(tmp_path / "metrics.csv")
    assert len(rows) == 6 and rows[-1]["fid"] == "12.5" and rows[0]["fid"] == ""
    log.truncate_after(3)  # a resumed run rewrites what came after its checkpoint
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.csv")] == ["1", "2", "3"]
    assert plot_losses(tmp_path / "metrics.csv", tmp_path / "losses.png")
    assert Image.open(tmp_path / "losses.png").size == (800, 400)
