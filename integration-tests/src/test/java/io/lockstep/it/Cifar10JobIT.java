package io.lockstep.it;

import static io.lockstep.it.Cli.assertExit;
import static io.lockstep.it.Cli.assertRefused;
import static io.lockstep.it.Cli.summary;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The {@code cifar10-lenet} job on CIFAR-10 files in the real binary layout. */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class Cifar10JobIT {

  @Test
  void trainsTheSeedsCifarLenetOnFilesGivenWithDataDir(@TempDir Path tmp) throws Exception {
    final Path data = tmp.resolve("cifar-10-batches-bin");
    SyntheticCifar10.write(data, 1_000, 11);
    final Path run = tmp.resolve("run");
    assertExit(
        0,
        "train",
        "cifar10-lenet",
        "--data-dir",
        data.toString(),
        "--workers",
        "2",
        "--epochs",
        "2",
        "--run-dir",
        run.toString());
    final JsonObject summary = summary(run);
    assertEquals("cifar10-lenet", summary.get("job").getAsString());
    assertEquals("lenet-cifar", summary.get("model").getAsString());
    assertEquals(62_006, summary.get("parameters").getAsInt());
    // 5,000 training images in global batches of 128: 40 steps an epoch
    assertEquals(80, summary.get("steps").getAsInt());
    assertEquals("onednn", summary.get("engine").getAsString());
    final double accuracy = summary.get("test_accuracy").getAsDouble();
    assertTrue(accuracy >= 0.8, "test accuracy " + accuracy);

    // the wrong model for the data, a missing folder: one-line errors, nothing written
    final Path refused = tmp.resolve("refused");
    assertRefused(
        2,
        refused,
        "train",
        "cifar10-lenet",
        "--data-dir",
        data.toString(),
        "--set",
        "lockstep.model.name=lenet");
    assertRefused(
        1, refused, "train", "cifar10-lenet", "--data-dir", tmp.resolve("none").toString());
  }
}
