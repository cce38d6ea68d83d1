package io.lockstep.run;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.data.Cifar10;
import io.lockstep.data.ImageFolder;
import io.lockstep.data.Shapes;
import io.lockstep.models.ComputeHelpers;
import io.lockstep.models.ModelFile;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.evaluation.Prediction;
import io.lockstep.worker.evaluation.TestMetric;
import io.lockstep.worker.input.Datasets;
import io.lockstep.worker.input.Samples;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The run's {@code report.html}: one self-contained page (no network: charts are inline SVG drawn
 * by XChart, images inline PNG) with the loss, test metric, throughput and per-worker phase charts
 * from {@code metrics.jsonl}, the confusion matrix and a grid of test images with their true and
 * predicted labels (mistakes first, boxes drawn for detection and grounding) from {@code
 * model.zip}, and the run's configuration and summary. Written at the end of every run and by
 * {@code lockstep report RUN_DIR}.
 */
public final class RunReport {

  /** Series colors, in order: the screenshot test looks for the first two in the charts. */
  static final Color[] PALETTE = {
    new Color(0x1f, 0x77, 0xb4),
    new Color(0xff, 0x7f, 0x0e),
    new Color(0x2c, 0xa0, 0x2c),
    new Color(0xd6, 0x27, 0x28),
    new Color(0x94, 0x67, 0xbd),
    new Color(0x8c, 0x56, 0x4b)
  };

  private static final List<String> FASHION =
      List.of(
          "T-shirt/top",
          "Trouser",
          "Pullover",
          "Dress",
          "Coat",
          "Sandal",
          "Shirt",
          "Sneaker",
          "Bag",
          "Ankle boot");
  private static final List<String> DIGITS =
      List.of("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");
  private static final int CHART_WIDTH = 560;
  private static final int CHART_HEIGHT = 320;
  private static final int TILE = 112;
  private static final int SMOOTHING_STEPS = 20;

  private static final String STYLE =
      "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222}"
          + "h1{margin-bottom:4px}.lead{color:#555;margin-top:0}"
          + ".charts{display:flex;flex-wrap:wrap;gap:12px}"
          + ".chart{margin:0;border:1px solid #ddd}.note{color:#888}"
          + ".grid{display:flex;flex-wrap:wrap;gap:8px}"
          + ".grid figure{margin:0;width:"
          + TILE
          + "px;font-size:11px;text-align:center}"
          + ".grid figure.wrong img{outline:3px solid #d62728}"
          + ".grid figure.right img{outline:3px solid #2ca02c}"
          + "table{border-collapse:collapse;font-size:12px}"
          + "td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}"
          + ".kv th{text-align:left}pre{background:#f6f6f6;padding:8px;font-size:12px}";

  static {
    // XChart measures text with AWT: no display needed, none wanted
    System.setProperty("java.awt.headless", "true");
  }

  private RunReport() {}

  /**
   * Writes {@code report.html} into a run directory from the files a run leaves there; without
   * {@code model.zip} (a run that has not finished) the page says so and leaves out the
   * predictions.
   *
   * @param runDir the run directory
   * @return the report's path
   * @throws ConfigurationException when {@code runDir} is no run directory or its files cannot be
   *     read
   */
  public static Path write(Path runDir) {
    final Path jobFile = runDir.resolve(RunDirectory.JOB_FILE);
    final Path metricsFile = runDir.resolve(RunDirectory.METRICS_FILE);
    if (!Files.isRegularFile(jobFile) || !Files.isRegularFile(metricsFile)) {
      throw new ConfigurationException(
          runDir
              + ": not a run directory (no "
              + (Files.isRegularFile(jobFile) ? RunDirectory.METRICS_FILE : RunDirectory.JOB_FILE)
              + "); give the folder a training run wrote");
    }
    final String jobText = read(jobFile);
    final JobConfig job = JobConfig.load(JobConfig.parse(jobText, jobFile.toString()));
    final List<StepMetrics> steps;
    final List<EpochMetrics> epochs;
    try {
      final List<JsonObject> lines = StepMetrics.lines(metricsFile);
      steps = StepMetrics.steps(lines);
      epochs = EpochMetrics.epochs(lines);
    } catch (IOException | RuntimeException e) {
      throw new ConfigurationException(
          metricsFile + ": cannot read the run's metrics (" + e.getMessage() + ")");
    }
    final Path summaryFile = runDir.resolve(RunDirectory.SUMMARY_FILE);
    final JsonObject summary =
        Files.isRegularFile(summaryFile) ? parseObject(summaryFile) : new JsonObject();
    final StringBuilder html = new StringBuilder();
    html.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .append("<title>")
        .append(escape(job.get(Keys.JOB_NAME)))
        .append(" - Lockstep report</title>\n<style>")
        .append(STYLE)
        .append("</style></head><body>\n<h1>")
        .append(escape(job.get(Keys.JOB_NAME)))
        .append("</h1>\n<p class=\"lead\">")
        .append(escape(headline(job, summary, steps, epochs)))
        .append("</p>\n<h2>Training</h2>\n<div class=\"charts\">\n");
    chart(html, "loss", lossChart(steps, epochs));
    chart(html, "test-metric", testChart(epochs));
    chart(html, "throughput", throughputChart(steps));
    chart(html, "phases", phaseChart(steps));
    html.append("</div>\n");
    final Path modelFile = runDir.resolve(RunDirectory.MODEL_FILE);
    if (Files.isRegularFile(modelFile)) {
      predictions(html, job, modelFile);
    } else {
      html.append("<p class=\"note\">No ")
          .append(RunDirectory.MODEL_FILE)
          .append(" yet: the run has not finished, so predictions are left out.</p>\n");
    }
    html.append("<h2>Summary</h2>\n<table class=\"kv\">\n");
    for (Map.Entry<String, JsonElement> entry : summary.entrySet()) {
      html.append("<tr><th>")
          .append(escape(entry.getKey()))
          .append("</th><td>")
          .append(escape(SummaryText.of(entry.getKey(), entry.getValue())))
          .append("</td></tr>\n");
    }
    html.append("</table>\n<h2>Configuration</h2>\n<pre>")
        .append(escape(jobText))
        .append("</pre>\n</body></html>\n");
    final Path target = runDir.resolve(RunDirectory.REPORT_FILE);
    RunFiles.writeText(target, html.toString());
    return target;
  }

  private static String headline(
      JobConfig job, JsonObject summary, List<StepMetrics> steps, List<EpochMetrics> epochs) {
    final StringBuilder line = new StringBuilder();
    line.append(
        String.format(
            Locale.ROOT,
            "model %s, %d worker(s), global batch %d",
            job.get(Keys.MODEL_NAME),
            job.get(Keys.WORKERS),
            job.get(Keys.BATCH_SIZE)));
    if (!epochs.isEmpty()) {
      final EpochMetrics last = epochs.get(epochs.size() - 1);
      line.append(
          String.format(
              Locale.ROOT,
              "; after %d epoch(s) and %d steps: %s %.4f",
              last.epoch(),
              steps.isEmpty() ? last.step() : steps.get(steps.size() - 1).step(),
              last.testMetric().replace('_', ' '),
              last.testValue()));
    }
    if (summary.has("images_per_second")) {
      line.append(
          String.format(
              Locale.ROOT,
              ", %.0f images/s, %.1f s",
              summary.get("images_per_second").getAsDouble(),
              summary.get("wall_seconds").getAsDouble()));
    }
    return line.toString();
  }

  private static XYChart lossChart(List<StepMetrics> steps, List<EpochMetrics> epochs) {
    final XYChart chart = xyChart("Training loss", "step", "loss");
    if (!steps.isEmpty()) {
      final XYSeries perStep =
          chart.addSeries(
              "per step",
              steps.stream().mapToDouble(StepMetrics::step).toArray(),
              steps.stream().mapToDouble(StepMetrics::loss).toArray());
      perStep.setMarker(SeriesMarkers.NONE);
    }
    if (!epochs.isEmpty()) {
      chart.addSeries(
          "epoch mean",
          epochs.stream().mapToDouble(EpochMetrics::step).toArray(),
          epochs.stream().mapToDouble(EpochMetrics::trainLoss).toArray());
    }
    return chart;
  }

  private static XYChart testChart(List<EpochMetrics> epochs) {
    final String metric =
        epochs.isEmpty() ? "test metric" : epochs.get(0).testMetric().replace('_', ' ');
    final XYChart chart = xyChart("Test " + metric.replace("test ", ""), "epoch", metric);
    // one series, named by the title: a legend would only cover the last (highest) points
    chart.getStyler().setLegendVisible(false);
    if (!epochs.isEmpty()) {
      chart.addSeries(
          metric,
          epochs.stream().mapToDouble(EpochMetrics::epoch).toArray(),
          epochs.stream().mapToDouble(EpochMetrics::testValue).toArray());
    }
    return chart;
  }

  private static XYChart throughputChart(List<StepMetrics> steps) {
    final XYChart chart = xyChart("Throughput", "step", "images/s");
    final List<StepMetrics> timed =
        steps.stream().filter(s -> Double.isFinite(s.imagesPerSecond())).toList();
    if (!timed.isEmpty()) {
      final double[] x = timed.stream().mapToDouble(StepMetrics::step).toArray();
      final double[] y = timed.stream().mapToDouble(StepMetrics::imagesPerSecond).toArray();
      chart.addSeries("per step", x, y).setMarker(SeriesMarkers.NONE);
      final double[] smooth = new double[y.length];
      for (int i = 0; i < y.length; i++) {
        final double[] window =
            java.util.Arrays.copyOfRange(y, Math.max(0, i - SMOOTHING_STEPS + 1), i + 1);
        java.util.Arrays.sort(window);
        smooth[i] = window[window.length / 2];
      }
      chart
          .addSeries("median of " + SMOOTHING_STEPS + " steps", x, smooth)
          .setMarker(SeriesMarkers.NONE);
    }
    return chart;
  }

  /** Each worker's mean time per step in each phase, the run's first step (warm-up) left out. */
  private static CategoryChart phaseChart(List<StepMetrics> steps) {
    final CategoryChart chart =
        new CategoryChartBuilder()
            .width(CHART_WIDTH)
            .height(CHART_HEIGHT)
            .title("Where a step's time goes, per worker")
            .xAxisTitle("worker")
            .yAxisTitle("ms per step")
            .build();
    style(chart.getStyler());
    chart.getStyler().setStacked(true);
    chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
    final List<StepMetrics> timed =
        steps.stream().filter(s -> s.workerPhases() != null && s.step() > 1).toList();
    if (timed.isEmpty()) {
      return chart;
    }
    // a run that lost workers has steps with fewer: each worker's mean is over its own steps
    final int workers = timed.stream().mapToInt(s -> s.workerPhases().size()).max().orElseThrow();
    final List<String> ranks = new ArrayList<>();
    for (int r = 0; r < workers; r++) {
      ranks.add("worker " + r);
    }
    final String[] names = {"data", "compute", "send", "wait", "receive", "apply"};
    for (int p = 0; p < names.length; p++) {
      final List<Double> means = new ArrayList<>();
      for (int r = 0; r < workers; r++) {
        double sum = 0;
        int counted = 0;
        for (StepMetrics step : timed) {
          if (r >= step.workerPhases().size()) {
            continue;
          }
          counted++;
          final StepMetrics.Phases phases = step.workerPhases().get(r);
          sum +=
              switch (p) {
                case 0 -> phases.dataMs();
                case 1 -> phases.computeMs();
                case 2 -> phases.sendMs();
                case 3 -> phases.waitMs();
                case 4 -> phases.receiveMs();
                default -> phases.applyMs();
              };
        }
        means.add(sum / counted);
      }
      chart.addSeries(names[p], ranks, means);
    }
    return chart;
  }

  private static XYChart xyChart(String title, String x, String y) {
    final XYChart chart =
        new XYChartBuilder()
            .width(CHART_WIDTH)
            .height(CHART_HEIGHT)
            .title(title)
            .xAxisTitle(x)
            .yAxisTitle(y)
            .build();
    style(chart.getStyler());
    chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
    chart.getStyler().setMarkerSize(6);
    // steps and epochs: XChart labels every n-th of such equally spaced values, as close as the
    // labels' widths allow, so that they ran together ("1,0721,191"); turned and without thousands
    // separators they stand apart
    chart.getStyler().setXAxisDecimalPattern("#");
    chart.getStyler().setXAxisLabelRotation(30);
    return chart;
  }

  private static void style(Styler styler) {
    styler.setSeriesColors(PALETTE);
    styler.setChartBackgroundColor(Color.WHITE);
    styler.setPlotBackgroundColor(Color.WHITE);
    styler.setAntiAlias(true);
  }

  /** Appends a chart as inline SVG, or a note where it has no data. */
  private static void chart(StringBuilder html, String id, Chart<?, ?> chart) {
    html.append("<figure class=\"chart\" id=\"chart-").append(id).append("\">");
    if (chart.getSeriesMap().isEmpty()) {
      html.append("<p class=\"note\">")
          .append(escape(chart.getTitle()))
          .append(": no data yet</p>");
    } else {
      html.append(svg(chart));
    }
    html.append("</figure>\n");
  }

  private static String svg(Chart<?, ?> chart) {
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      VectorGraphicsEncoder.saveVectorGraphic(
          chart, out, VectorGraphicsEncoder.VectorGraphicsFormat.SVG);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    final String text = out.toString(StandardCharsets.UTF_8);
    // inline: the <svg> element without the XML declaration and doctype before it
    return text.substring(text.indexOf("<svg"));
  }

  /** The confusion matrix (classifiers) and the grid of test images, mistakes first. */
  private static void predictions(StringBuilder html, JobConfig job, Path modelFile) {
    final ComputationGraph network =
        ModelFile.restoreGraph(modelFile, modelFile.toString(), "train the run again", false);
    ComputeHelpers.detachUnsupported(network);
    final Samples test = Datasets.test(job);
    final TestMetric metric = TestMetric.of(job, test);
    final List<Prediction> predictions = metric.predict(network);
    final List<String> names = classNames(job);
    final long wrong = predictions.stream().filter(p -> !p.correct()).count();
    html.append("<h2>Test set</h2>\n<p>")
        .append(predictions.size() - wrong)
        .append(" of ")
        .append(predictions.size())
        .append(" test images right, ")
        .append(wrong)
        .append(" wrong")
        .append(
            predictions.get(0).predicted() < 0 ? " (every box found at IoU 0.5, none extra)" : "")
        .append(".</p>\n");
    if (predictions.get(0).predicted() >= 0) {
      confusion(html, predictions, names);
    }
    final List<Prediction> shown = new ArrayList<>(predictions);
    shown.sort(Comparator.comparing(Prediction::correct)); // stable: mistakes first, in split order
    html.append("<h3>Test images, mistakes first</h3>\n<div class=\"grid\">\n");
    final int count = Math.min(job.get(Keys.RUN_REPORT_IMAGES), shown.size());
    for (int i = 0; i < count; i++) {
      final Prediction p = shown.get(i);
      // the image: a grounding model's features carry the phrase's tokens after it
      final INDArray features =
          ModelZoo.inputs(network, test.features(new int[] {p.index()}, 0))[0];
      html.append("<figure class=\"")
          .append(p.correct() ? "right" : "wrong")
          .append("\"><img alt=\"test image ")
          .append(p.index())
          .append("\" src=\"data:image/png;base64,")
          .append(png(features, p, names))
          .append("\"><figcaption>")
          .append(escape(caption(p, names)))
          .append("</figcaption></figure>\n");
    }
    html.append("</div>\n");
  }

  private static String caption(Prediction p, List<String> names) {
    if (p.predicted() >= 0) {
      return "true "
          + name(names, p.label())
          + (p.correct() ? "" : ", predicted " + name(names, p.predicted()));
    }
    if (!p.caption().isEmpty()) {
      return "\u201c" + p.caption() + "\u201d" + (p.correct() ? "" : " (missed)");
    }
    return p.truth().size()
        + " shape(s), "
        + p.boxes().size()
        + " found"
        + (p.correct() ? "" : " (wrong)");
  }

  private static void confusion(
      StringBuilder html, List<Prediction> predictions, List<String> names) {
    int classes = 0;
    for (Prediction p : predictions) {
      classes = Math.max(classes, Math.max(p.label(), p.predicted()) + 1);
    }
    final long[][] counts = new long[classes][classes];
    for (Prediction p : predictions) {
      counts[p.label()][p.predicted()]++;
    }
    html.append(
        "<h3>Confusion matrix</h3>\n<table class=\"confusion\"><tr><th>true \\ predicted</th>");
    for (int c = 0; c < classes; c++) {
      html.append("<th>").append(escape(name(names, c))).append("</th>");
    }
    html.append("</tr>\n");
    for (int t = 0; t < classes; t++) {
      long row = 0;
      for (long n : counts[t]) {
        row += n;
      }
      html.append("<tr><th>").append(escape(name(names, t))).append("</th>");
      for (int c = 0; c < classes; c++) {
        final double share = row == 0 ? 0 : (double) counts[t][c] / row;
        final String color =
            t == c
                ? String.format(Locale.ROOT, "rgba(44,160,44,%.2f)", share)
                : String.format(Locale.ROOT, "rgba(214,39,40,%.2f)", Math.min(1, share * 3));
        html.append("<td style=\"background:")
            .append(color)
            .append("\" title=\"")
            .append(String.format(Locale.ROOT, "%.1f%%", share * 100))
            .append("\">")
            .append(counts[t][c])
            .append("</td>");
      }
      html.append("</tr>\n");
    }
    html.append("</table>\n");
  }

  /** One test image as PNG, scaled up, contrast stretched, with its boxes drawn. */
  private static String png(INDArray features, Prediction p, List<String> names) {
    final int channels = (int) features.size(1);
    final int height = (int) features.size(2);
    final int width = (int) features.size(3);
    final float[] values = features.dup('c').data().asFloat();
    float min = Float.MAX_VALUE;
    float max = -Float.MAX_VALUE;
    for (float v : values) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    final float range = max > min ? max - min : 1;
    final BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < height; y++) {
      for (int x = 0; x < width; x++) {
        int rgb = 0;
        for (int c = 0; c < 3; c++) {
          final int channel = channels == 1 ? 0 : Math.min(c, channels - 1);
          final float v = values[(channel * height + y) * width + x];
          rgb = rgb << 8 | Math.round(255 * (v - min) / range);
        }
        image.setRGB(x, y, rgb);
      }
    }
    final int side = TILE;
    final int scaledHeight = Math.max(1, Math.round((float) side * height / width));
    final BufferedImage tile = new BufferedImage(side, scaledHeight, BufferedImage.TYPE_INT_RGB);
    final Graphics2D g = tile.createGraphics();
    g.setRenderingHint(
        RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR);
    g.drawImage(image, 0, 0, side, scaledHeight, null);
    g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
    g.setStroke(new BasicStroke(2f));
    drawBoxes(g, p.truth(), PALETTE[2], side, scaledHeight, names);
    drawBoxes(g, p.boxes(), PALETTE[3], side, scaledHeight, names);
    g.dispose();
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      ImageIO.write(tile, "png", out);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return Base64.getEncoder().encodeToString(out.toByteArray());
  }

  private static void drawBoxes(
      Graphics2D g,
      List<Prediction.Box> boxes,
      Color color,
      int width,
      int height,
      List<String> names) {
    g.setColor(color);
    for (Prediction.Box box : boxes) {
      final int x1 = (int) Math.round(box.x1() * width);
      final int y1 = (int) Math.round(box.y1() * height);
      final int x2 = (int) Math.round(box.x2() * width);
      final int y2 = (int) Math.round(box.y2() * height);
      g.drawRect(x1, y1, Math.max(1, x2 - x1), Math.max(1, y2 - y1));
      if (box.score() < 1) {
        g.drawString(
            String.format(Locale.ROOT, "%s %.2f", name(names, box.kind()), box.score()),
            x1 + 2,
            Math.max(10, y1 - 2));
      }
    }
  }

  /** The names of the job's classes, in label order; numbers where the data names none. */
  static List<String> classNames(JobConfig job) {
    return switch (job.get(Keys.DATA_FORMAT)) {
      case IDX ->
          (job.get(Keys.DATA_DIR) + " " + job.get(Keys.JOB_NAME))
                  .toLowerCase(Locale.ROOT)
                  .contains("fashion")
              ? FASHION
              : DIGITS;
      case MNIST_JSON -> DIGITS;
      case CIFAR10 -> Cifar10.classNames(job.get(Keys.DATA_DIR));
      case FOLDER -> ImageFolder.list(job.get(Keys.DATA_DIR), "val").classes();
      case SHAPES -> Shapes.KINDS;
    };
  }

  private static String name(List<String> names, int label) {
    return label >= 0 && label < names.size() ? names.get(label) : Integer.toString(label);
  }

  private static String read(Path file) {
    try {
      return Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new ConfigurationException(file + ": cannot read (" + e.getMessage() + ")");
    }
  }

  private static JsonObject parseObject(Path file) {
    try {
      return JsonParser.parseString(read(file)).getAsJsonObject();
    } catch (RuntimeException e) {
      throw new ConfigurationException(file + ": not the run's JSON (" + e.getMessage() + ")");
    }
  }

  static String escape(String text) {
    final StringBuilder out = new StringBuilder(text.length());
    for (char c : text.toCharArray()) {
      switch (c) {
        case '<' -> out.append("&lt;");
        case '>' -> out.append("&gt;");
        case '&' -> out.append("&amp;");
        case '"' -> out.append("&quot;");
        default -> out.append(c);
      }
    }
    return out.toString();
  }
}
