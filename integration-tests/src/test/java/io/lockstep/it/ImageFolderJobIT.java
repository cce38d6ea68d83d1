package io.lockstep.it;

import static io.lockstep.it.Cli.assertExit;
import static io.lockstep.it.Cli.assertRefused;
import static io.lockstep.it.Cli.summary;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
    // after two steps the accuracy is chance's, but it is the saved model's over the whole
    // validation split: the report, which loads model.zip again and predicts every image anew,
    // finds as many right of the 60, and 20 of each class, each labeled by its folder
    final String report = Files.readString(resnet.resolve("report.html"));
    final Matcher right = Pattern.compile("(\\d+) of (\\d+) test images right").matcher(report);
    assertTrue(right.find(), "report.html has no count of right test images");
    assertEquals(60, Integer.parseInt(right.group(2)));
    assertEquals(
        Integer.parseInt(right.group(1)) / 60.0,
        shipped.get("test_accuracy").getAsDouble(),
        1e-12,
        right.group());
    for (String name : SyntheticImageFolder.CLASSES) {
      final Matcher row = Pattern.compile("<tr><th>" + name + "</th>(.*)</tr>").matcher(report);
      assertTrue(row.find(), "no row for true class " + name + " in the confusion matrix");
      final Matcher cells = Pattern.compile(">(\\d+)</td>").matcher(row.group(1));
      int images = 0;
      while (cells.find()) {
        images += Integer.parseInt(cells.group(1));
      }
      assertEquals(20, images, "validation images of " + name + ": " + row.group());
    }

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
