package io.lockstep.run;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;

class SummaryTextTest {

  private static String of(String key, String json) {
    return SummaryText.of(key, JsonParser.parseString(json));
  }

  @Test
  void showsEachValueWithItsUnitAndAPrecisionAPersonReads() {
    assertEquals("5,075.3 s (1 h 24 min)", of("wall_seconds", "5075.313200225208"));
    assertEquals("473.8 s (7 min 54 s)", of("wall_seconds", "473.76967323"));
    assertEquals("9.0 s", of("train_seconds", "9"));
    assertEquals("56 images/s", of("images_per_second", "56.40336338776925"));
    assertEquals("0.6345", of("mean_iou", "0.6345243233739523"));
    assertEquals("756,600", of("parameters", "756600"));
    assertEquals("12,345.7", of("loss_sum", "12345.678"));
    assertEquals("94f15796", of("parameters_crc32", "\"94f15796\""));
    assertEquals("false", of("frame_tags", "false"));
    assertEquals("NaN", of("test_accuracy", "\"NaN\""));
  }

  @Test
  void writesRecordsOnOneLineWithTheirFieldsUnits() {
    assertEquals(
        "data 0.3 s, compute 385.1 s (6 min 25 s)",
        of("phase_seconds", "{\"data\":0.349796022,\"compute\":385.059283926}"));
    assertEquals(
        "epoch 1, train loss 2.8053, seconds 153.4 s (2 min 33 s), mean iou 0.3144;"
            + " epoch 2, train loss 0.8605, seconds 137.3 s (2 min 17 s), mean iou 0.5416",
        of(
            "history",
            "[{\"epoch\":1,\"train_loss\":2.8053182925329336,\"seconds\":153.390077542,"
                + "\"mean_iou\":0.31440594296548147},{\"epoch\":2,\"train_loss\":0.860481463178061,"
                + "\"seconds\":137.279056819,\"mean_iou\":0.5416271740844725}]"));
  }
}
