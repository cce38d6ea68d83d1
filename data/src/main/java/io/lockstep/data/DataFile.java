package io.lockstep.data;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * One file of a dataset, read through the Hadoop {@link FileSystem} and named in errors as the user
 * gave it ({@code file:///data/x}, {@code hdfs://nn:8020/data/x} or {@code data/x}), not as Hadoop
 * prints the path ({@code file:/data/x}). {@link #open} refuses what no reader can use, each in one
 * line that names the file: a folder where the file should be, an empty file (to Hadoop a pipe or a
 * device is one too, so nothing waits on one), a file that cannot be opened.
 *
 * @param name the file as the user gave it
 * @param path the file
 * @param fix what to do about a damaged file, such as {@code download it again}
 */
record DataFile(String name, Path path, String fix) {

  /**
   * A file in a folder.
   *
   * @param directory the folder or URI as the user gave it
   * @param child the file's path inside it
   * @param fix what to do about a damaged file
   * @return the file
   */
  static DataFile in(String directory, String child, String fix) {
    return new DataFile(join(directory, child), new Path(new Path(directory), child), fix);
  }

  /**
   * A path under a folder as the user gave it: {@code file:///d/} and {@code x} give {@code
   * file:///d/x}.
   *
   * @param directory a folder or URI
   * @param child a path inside it
   * @return the two joined by one slash
   */
  static String join(String directory, String child) {
    return directory.endsWith("/") ? directory + child : directory + "/" + child;
  }

  /**
   * Refuses a data folder or URI that names a file: the readers look for files inside it.
   *
   * @param directory the folder or URI as the user gave it
   * @param hadoop the Hadoop configuration
   * @param fix what to give instead
   * @throws DataException when {@code directory} is a file
   */
  static void checkFolder(String directory, Configuration hadoop, String fix) {
    final Path dir = new Path(directory);
    try {
      final FileStatus status = dir.getFileSystem(hadoop).getFileStatus(dir);
      if (!status.isDirectory()) {
        throw new DataException(directory + ": a file, not a folder; " + fix);
      }
    } catch (FileNotFoundException e) {
      // each reader names the files it looked for
    } catch (IOException e) {
      throw new DataException(directory + ": cannot list (" + reason(e) + ")", e);
    }
  }

  /**
   * Opens the file to read.
   *
   * @param hadoop the Hadoop configuration
   * @return the open stream; the caller closes it
   * @throws DataException when the file is missing, a folder, empty, or cannot be opened
   */
  InputStream open(Configuration hadoop) {
    final FileSystem fs;
    final FileStatus status;
    try {
      fs = path.getFileSystem(hadoop);
      status = fs.getFileStatus(path);
    } catch (FileNotFoundException e) {
      throw new DataException(name + ": no such file; " + fix, e);
    } catch (IOException e) {
      throw unreadable(e);
    }
    if (status.isDirectory()) {
      throw new DataException(name + ": a folder where the file should be; remove or rename it");
    }
    if (status.getLen() == 0) {
      throw damaged("empty (0 bytes)", null);
    }
    try {
      return fs.open(path);
    } catch (IOException e) {
      throw unreadable(e);
    }
  }

  /**
   * A damaged file.
   *
   * @param problem what is wrong with it
   * @param cause the error that showed it, or null
   * @return the exception, whose message is the name, the problem and the fix
   */
  DataException damaged(String problem, Throwable cause) {
    return new DataException(name + ": " + problem + "; " + fix, cause);
  }

  /**
   * A file that cannot be read: no permission, an I/O error, a file system's own check failed.
   *
   * @param e the error
   * @return the exception, naming the file and the error's reason
   */
  DataException unreadable(IOException e) {
    return new DataException(name + ": cannot read (" + reason(e) + ")", e);
  }

  /**
   * Bytes in thousands, as the messages give sizes: {@code 47,040,016}.
   *
   * @param bytes a count
   * @return it with thousands separators
   */
  static String count(long bytes) {
    return String.format(Locale.ROOT, "%,d", bytes);
  }

  /**
   * An I/O error's reason in a few words: the first line of its message, without the path that
   * Java's local file errors put first ({@code /d/x (Permission denied)} gives {@code Permission
   * denied}), or its type.
   */
  private static String reason(IOException e) {
    final String message = e.getMessage();
    if (message == null || message.isBlank()) {
      return e.getClass().getSimpleName();
    }
    final String line = message.lines().findFirst().orElse(message);
    final int open = line.lastIndexOf(" (");
    return e instanceof FileNotFoundException && open > 0 && line.endsWith(")")
        ? line.substring(open + 2, line.length() - 1)
        : line;
  }
}
