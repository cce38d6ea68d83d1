package io.lockstep.run;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The values of {@code summary.json} as a person reads them in the report: counts with thousands
 * separators, times in seconds with one decimal (and minutes where they are long), rates as whole
 * images per second, metrics with four decimals, and nested records as one line each.
 */
final class SummaryText {
  private static final String SECONDS = "_seconds";
  private static final String PER_SECOND = "_per_second";

  private SummaryText() {}

  /**
   * One summary value in words.
   *
   * @param key the value's key in {@code summary.json}; its suffix gives the unit
   * @param value the value
   * @return the text to show
   */
  static String of(String key, JsonElement value) {
    if (value.isJsonPrimitive()) {
      return primitive(key, value.getAsJsonPrimitive());
    }
    if (value.isJsonObject()) {
      return record(key, value.getAsJsonObject());
    }
    if (value.isJsonArray()) {
      final List<String> items = new ArrayList<>();
      for (JsonElement item : value.getAsJsonArray()) {
        items.add(of(key, item));
      }
      return String.join("; ", items);
    }
    return "";
  }

  /** A record's fields as {@code name value}; the fields of {@code phase_seconds} are seconds. */
  private static String record(String key, JsonObject object) {
    final List<String> fields = new ArrayList<>();
    for (Map.Entry<String, JsonElement> field : object.entrySet()) {
      final String name = field.getKey();
      final String unitKey = key.endsWith(SECONDS) && !name.contains("_") ? SECONDS : name;
      fields.add(name.replace('_', ' ') + " " + of(unitKey, field.getValue()));
    }
    return String.join(", ", fields);
  }

  private static String primitive(String key, JsonPrimitive value) {
    if (!value.isNumber()) {
      return value.getAsString();
    }
    final double number = value.getAsDouble();
    if (!Double.isFinite(number)) {
      return String.valueOf(number);
    }
    if (key.endsWith(SECONDS) || key.equals("seconds")) {
      return seconds(number);
    }
    if (key.endsWith(PER_SECOND)) {
      final String counted = key.substring(0, key.length() - PER_SECOND.length());
      return String.format(
          Locale.ROOT, "%,.0f %s/s", number, counted.substring(counted.lastIndexOf('_') + 1));
    }
    if (number == Math.rint(number) && Math.abs(number) < 1e15) {
      return String.format(Locale.ROOT, "%,d", (long) number);
    }
    return String.format(Locale.ROOT, Math.abs(number) >= 1000 ? "%,.1f" : "%.4f", number);
  }

  /** Seconds with one decimal, and in minutes or hours too from two minutes on. */
  static String seconds(double seconds) {
    final String plain = String.format(Locale.ROOT, "%,.1f s", seconds);
    if (seconds < 120) {
      return plain;
    }
    final long whole = Math.round(seconds);
    final long hours = whole / 3600;
    final long minutes = whole % 3600 / 60;
    return plain
        + (hours > 0
            ? String.format(Locale.ROOT, " (%d h %02d min)", hours, minutes)
            : String.format(Locale.ROOT, " (%d min %02d s)", minutes, whole % 60));
  }
}
