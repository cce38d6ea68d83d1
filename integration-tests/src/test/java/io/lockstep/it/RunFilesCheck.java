package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;

/**
 * Checks of what a run leaves for people to look at: {@code metrics.jsonl}, {@code timeline.json}
 * and {@code report.html}, the last rendered by headless Chromium.
 */
final class RunFilesCheck {
  /** The report's first two series colors (RunReport.PALETTE): lines and bars of its charts. */
  private static final int[] SERIES_COLORS = {0x1f77b4, 0xff7f0e};

  private RunFilesCheck() {}

  /**
   * Checks the timeline: Chrome trace JSON with a named track per worker holding step spans with
   * their phases, and a track per server shard.
   *
   * @param run the run directory
   * @param workers the run's workers
   * @param shards the server shards in the driver's JVM
   */
  static void assertTimeline(Path run, int workers, int shards) throws IOException {
    final JsonObject trace =
        JsonParser.parseString(Files.readString(run.resolve("timeline.json"))).getAsJsonObject();
    final Map<String, Integer> spans = new HashMap<>();
    final Map<String, String> tracks = new HashMap<>();
    for (JsonElement element : trace.getAsJsonArray("traceEvents")) {
      final JsonObject event = element.getAsJsonObject();
      final String track =
          event.get("pid").getAsInt() + "/" + (event.has("tid") ? event.get("tid").getAsInt() : -1);
      switch (event.get("ph").getAsString()) {
        case "M" -> tracks.put(track, event.getAsJsonObject("args").get("name").getAsString());
        case "X" -> {
          assertTrue(event.get("ts").getAsLong() >= 0, event.toString());
          assertTrue(event.get("dur").getAsLong() >= 0, event.toString());
          spans.merge(
              track + " " + event.get("name").getAsString().replaceAll("\\d+", "N"),
              1,
              Integer::sum);
        }
        default -> throw new AssertionError("unexpected event " + event);
      }
    }
    for (int rank = 0; rank < workers; rank++) {
      assertEquals("worker " + rank, tracks.get("1/" + rank), tracks.toString());
      for (String phase : List.of("step N", "data", "compute", "apply")) {
        assertTrue(
            spans.getOrDefault("1/" + rank + " " + phase, 0) > 0,
            phase + " of worker " + rank + ": " + spans);
      }
    }
    for (int shard = 0; shard < shards; shard++) {
      assertEquals("shard " + shard, tracks.get("2/" + shard), tracks.toString());
      assertTrue(spans.getOrDefault("2/" + shard + " sum and send", 0) > 0, spans.toString());
    }
  }

  /**
   * Renders the report in headless Chromium and checks that its charts are drawn: the screenshot
   * has hundreds of pixels in each of the charts' first two series colors.
   *
   * @param run the run directory
   * @param scratch a folder for the browser's profile and the screenshot
   * @return the screenshot
   */
  static BufferedImage assertReportRenders(Path run, Path scratch) throws Exception {
    final Path report = run.resolve("report.html");
    final String html = Files.readString(report, StandardCharsets.UTF_8);
    assertEquals(4, html.split("<svg", -1).length - 1, "charts in the report");
    assertTrue(
        !html.contains("http://") || html.indexOf("http://") == html.indexOf("http://www.w3.org"),
        "the report must load nothing from the network");
    final Path png = scratch.resolve("report.png");
    final Process browser =
        new ProcessBuilder(
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--user-data-dir=" + scratch.resolve("profile"),
                "--window-size=1280,1400",
                "--screenshot=" + png,
                report.toUri().toString())
            .redirectErrorStream(true)
            .redirectOutput(scratch.resolve("chromium.log").toFile())
            .start();
    try {
      assertTrue(browser.waitFor(120, TimeUnit.SECONDS), "chromium did not finish in 120 s");
    } finally {
      browser.destroyForcibly();
    }
    assertEquals(0, browser.exitValue(), () -> "chromium failed: " + log(scratch));
    final BufferedImage shot = ImageIO.read(png.toFile());
    for (int color : SERIES_COLORS) {
      int pixels = 0;
      for (int y = 0; y < shot.getHeight(); y++) {
        for (int x = 0; x < shot.getWidth(); x++) {
          if (near(shot.getRGB(x, y), color)) {
            pixels++;
          }
        }
      }
      assertTrue(
          pixels > 300, String.format("%d pixels of #%06x in the rendered report", pixels, color));
    }
    return shot;
  }

  private static boolean near(int rgb, int color) {
    for (int shift = 0; shift <= 16; shift += 8) {
      if (Math.abs((rgb >> shift & 0xff) - (color >> shift & 0xff)) > 12) {
        return false;
      }
    }
    return true;
  }

  private static String chromium() {
    for (String name : List.of("chromium", "chromium-browser", "google-chrome")) {
      for (String dir :
          System.getenv().getOrDefault("PATH", "/usr/bin").split(File.pathSeparator)) {
        if (Files.isExecutable(Path.of(dir, name))) {
          return Path.of(dir, name).toString();
        }
      }
    }
    throw new AssertionError(
        "no chromium on the PATH to render report.html; install it (apt-get install chromium),"
            + " as .ci/run does");
  }

  private static String log(Path scratch) {
    try {
      return Files.readString(scratch.resolve("chromium.log"));
    } catch (IOException e) {
      return e.toString();
    }
  }
}
