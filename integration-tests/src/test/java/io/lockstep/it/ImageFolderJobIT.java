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

/**
 * The {@code imagenet-resnet18} job on an ImageNet-style folder of real JPEG files: the job itself
 * (torchvision's ResNet-18 at 224x224 on two workers, a few steps), and a small model learning the
 * folder through the same decoding, crops, flips and normalization.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class ImageFolderJobIT {

  @Test
  void trainsFromAnImageNetStyleFolder(@TempDir Path tmp) throws Exception {
    final Path data = tmp.resolve("shapes");
    SyntheticImageFolder.write(data, 100, 20, 5);

    // the job as shipped: ResNet-18 at 224x224, per-channel ImageNet normalization, 2 workers
    final Path resnet = tmp.resolve("resnet18");
    assertExit(
        0,
        "train",
        "imagenet-resnet18",
        "--data-dir",
        data.toString(),
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--set",
        "lockstep.eval.batch-size=20",
        "--run-dir",
        resnet.toString());
    final JsonObject shipped = summary(resnet);
    assertEquals("resnet18", shipped.get("model").getAsString());
    assertEquals(2, shipped.get("steps").getAsInt());
    assertEquals(2, shipped.get("workers").getAsInt());
    // the oneDNN engine computes torchvision's ResNet-18 (padded max-pool, 7x7/2 stem)
    assertEquals("onednn", shipped.get("engine").getAsString());
    final double chance = shipped.get("test_accuracy").getAsDouble();
    assertTrue(chance >= 0 && chance <= 1, shipped.toString());

    // a small model learns the folder: 32x32 crops of the same pipeline
    final Path small = tmp.resolve("simple-cnn");
    assertExit(
        0,
        "train",
        "imagenet-resnet18",
        "--data-dir",
        data.toString(),
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--set",
        "lockstep.model.name=simple-cnn",
        "--set",
        "lockstep.optimizer.learning-rate=0.02",
        "--set",
        "lockstep.schedule.name=constant",
        "--set",
        "lockstep.optimizer.weight-decay=0",
        "--run-dir",
        small.toString());
    final JsonObject learned = summary(small);
    assertEquals("simple-cnn", learned.get("model").getAsString());
    // 300 training images in global batches of 32: 10 steps an epoch
    assertEquals(60, learned.get("steps").getAsInt());
    final double accuracy = learned.get("test_accuracy").getAsDouble();
    assertTrue(accuracy >= 0.8, "validation accuracy " + accuracy);

    // a grey-scale model for RGB folders, or the wrong number of channel means: refused up front
    final Path refused = tmp.resolve("refused");
    assertRefused(
        2,
        refused,
        "train",
        "imagenet-resnet18",
        "--data-dir",
        data.toString(),
        "--set",
        "lockstep.model.name=lenet");
    assertRefused(
        2,
        refused,
        "train",
        "imagenet-resnet18",
        "--data-dir",
        data.toString(),
        "--set",
        "lockstep.data.mean=[0.5, 0.5]");
  }
}
