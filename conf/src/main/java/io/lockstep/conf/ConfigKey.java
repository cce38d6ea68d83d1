package io.lockstep.conf;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.Objects;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * One configuration key, declared once in {@link Keys}: its name, type, unit, default, one-line doc
 * and check, how a value is read from HOCON and how it is written back. A {@link JobConfig} holds
 * one value per key, read with {@link JobConfig#get}.
 *
 * @param <T> the Java type of the value
 */
public final class ConfigKey<T> {
  /** How a value of this key is read from HOCON. */
  @FunctionalInterface
  interface Reader<T> {
    T read(Config config, String path);
  }

  private final String name;
  private final String type;
  private final String unit;
  private final String defaultValue;
  private final String doc;
  private final Reader<T> reader;
  private final Function<T, String> writer;
  private final Predicate<T> check;
  private final String checkDoc;
  private final int index;

  ConfigKey(
      String name,
      String type,
      String unit,
      String defaultValue,
      String doc,
      Reader<T> reader,
      Function<T, String> writer,
      Predicate<T> check,
      String checkDoc,
      int index) {
    this.name = Objects.requireNonNull(name);
    this.type = type;
    this.unit = unit;
    this.defaultValue = defaultValue;
    this.doc = doc;
    this.reader = reader;
    this.writer = writer;
    this.check = check;
    this.checkDoc = checkDoc;
    this.index = index;
  }

  /** The full HOCON path, e.g. {@code lockstep.train.batch-size}. */
  public String name() {
    return name;
  }

  /** The value's type as users write it: int, double, string, duration, bytes, enum values. */
  public String type() {
    return type;
  }

  /** The unit, or an empty string where the value has none. */
  public String unit() {
    return unit;
  }

  /** The default, as HOCON text. */
  public String defaultValue() {
    return defaultValue;
  }

  /**
   * The default as a value, for code that takes this setting without a job, such as a connection's
   * context: the one default {@link JobConfig#load} also falls back to.
   *
   * @return the default, read as a job without this key reads it
   */
  public T defaultOf() {
    return read(ConfigFactory.parseString(name + " = " + defaultValue));
  }

  /** One line that says what the key does. */
  public String doc() {
    return doc;
  }

  /** The constraint a value must satisfy, in words. */
  public String checkDoc() {
    return checkDoc;
  }

  /** This key's position in {@link Keys#all()}, where a {@link JobConfig} keeps its value. */
  int index() {
    return index;
  }

  /**
   * Writes a value as HOCON text that {@link #read} turns back into an equal value.
   *
   * @param value a value of this key
   * @return its HOCON text
   */
  String write(Object value) {
    @SuppressWarnings("unchecked")
    final T typed = (T) value;
    return writer.apply(typed);
  }

  @Override
  public String toString() {
    return name;
  }

  /**
   * Reads and checks this key's value.
   *
   * @throws ConfigurationException naming the key, the value and the fix when the value is
   *     malformed or out of range
   */
  T read(Config config) {
    final T value;
    try {
      value = reader.read(config, name);
    } catch (ConfigException.WrongType | ConfigException.BadValue e) {
      throw new ConfigurationException(
          name
              + "="
              + render(config)
              + " is not a valid "
              + type
              + "; set it to "
              + checkDoc
              + " (default "
              + defaultValue
              + ")");
    }
    if (!check.test(value)) {
      throw new ConfigurationException(
          name + "=" + render(config) + " must be " + checkDoc + " (default " + defaultValue + ")");
    }
    return value;
  }

  private String render(Config config) {
    return config.getValue(name).render(com.typesafe.config.ConfigRenderOptions.concise());
  }
}
