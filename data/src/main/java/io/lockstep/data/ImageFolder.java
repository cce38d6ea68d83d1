package io.lockstep.data;

import java.awt.image.BufferedImage;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import javax.imageio.IIOException;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * An ImageNet-style folder, as torchvision's {@code ImageFolder} reads it: {@code
 * ROOT/train/<class>/*.jpg} and {@code ROOT/val/<class>/*.jpg}, one folder per class, classes
 * numbered in the sorted order of their names, files in sorted order within a class. Listing reads
 * no image: the index holds paths, and each worker decodes only the images of its own slices, so a
 * dataset far larger than one machine's memory streams through the Hadoop {@code FileSystem}
 * ({@code file://}, {@code hdfs://}, {@code s3a://}).
 *
 * @param root the dataset's folder or URI
 * @param split {@code train} or {@code val}
 * @param classes the class names, in label order
 * @param paths each image's path
 * @param labels each image's label
 */
public record ImageFolder(
    String root, String split, List<String> classes, List<String> paths, int[] labels)
    implements Serializable {

  /** The extensions read, lower case, as ImageIO decodes them. */
  public static final Set<String> EXTENSIONS = Set.of("jpg", "jpeg", "png");

  private static final String FIX = "copy it again, or remove it";

  /**
   * Lists one split.
   *
   * @param root a folder or Hadoop URI holding {@code train/} and {@code val/}
   * @param split {@code train} or {@code val}
   * @return the index: every image's path and label
   * @throws DataException naming the folder when it is missing, has no class folders, or a class
   *     folder has no images, or naming an empty image
   */
  public static ImageFolder list(String root, String split) {
    final String dirName = DataFile.join(root, split);
    final Path dir = new Path(new Path(root), split);
    try {
      final FileSystem fs = dir.getFileSystem(new Configuration());
      if (!fs.isDirectory(dir)) {
        throw new DataException(
            dirName
                + " is not a folder; set lockstep.data.dir (--data-dir) to a folder with train/"
                + " and val/, one subfolder of images per class (ImageNet's layout)");
      }
      final FileStatus[] classDirs =
          Arrays.stream(fs.listStatus(dir))
              .filter(FileStatus::isDirectory)
              .sorted(Comparator.comparing(s -> s.getPath().getName()))
              .toArray(FileStatus[]::new);
      if (classDirs.length == 0) {
        throw new DataException(
            dirName + " has no class folders; put each class's images in " + dirName + "/<class>/");
      }
      final List<String> classes = new ArrayList<>();
      final List<String> paths = new ArrayList<>();
      final List<Integer> labels = new ArrayList<>();
      for (FileStatus classDir : classDirs) {
        final int label = classes.size();
        final String className = classDir.getPath().getName();
        classes.add(className);
        final List<FileStatus> images =
            Arrays.stream(fs.listStatus(classDir.getPath()))
                .filter(FileStatus::isFile)
                .filter(s -> EXTENSIONS.contains(extension(s.getPath().getName())))
                .sorted(Comparator.comparing(s -> s.getPath().getName()))
                .toList();
        if (images.isEmpty()) {
          throw new DataException(
              DataFile.join(dirName, className)
                  + " has no images (."
                  + String.join(", .", EXTENSIONS.stream().sorted().toList())
                  + "); remove the folder or add its images");
        }
        for (FileStatus image : images) {
          // the listing knows the sizes: an empty image is refused now, not by a worker mid-run
          if (image.getLen() == 0) {
            throw new DataException(
                DataFile.join(DataFile.join(dirName, className), image.getPath().getName())
                    + ": empty (0 bytes); "
                    + FIX);
          }
          paths.add(image.getPath().toString());
          labels.add(label);
        }
      }
      return new ImageFolder(
          root,
          split,
          List.copyOf(classes),
          List.copyOf(paths),
          labels.stream().mapToInt(Integer::intValue).toArray());
    } catch (IOException e) {
      throw new DataException(dirName + ": cannot list (" + e.getMessage() + ")", e);
    }
  }

  /**
   * @return the number of images
   */
  public int count() {
    return labels.length;
  }

  /**
   * Decodes one image to RGB.
   *
   * @param index the image
   * @return its pixels
   * @throws DataException naming the file when it cannot be read, is truncated, or is not an image
   *     ImageIO decodes
   */
  public Image decode(int index) {
    final Path path = new Path(paths.get(index));
    final String name =
        DataFile.join(
            DataFile.join(DataFile.join(root, split), classes.get(labels[index])), path.getName());
    final DataFile file = new DataFile(name, path, FIX);
    try (InputStream in = file.open(new Configuration())) {
      return Image.fromRgb(read(file, in));
    } catch (IOException e) {
      throw file.unreadable(e);
    }
  }

  /**
   * Decodes with the reader ImageIO picks by content. ImageIO decodes a JPEG cut short into a
   * partly grey image and only warns; that warning, or a decoder's error at the end of the data, is
   * refused as truncated, as torchvision's loader (PIL) refuses a truncated file. Other warnings
   * (extraneous bytes before a marker, an invalid colour profile) pass, as they do in PIL.
   */
  private static BufferedImage read(DataFile file, InputStream in) throws IOException {
    try (ImageInputStream stream = new MemoryCacheImageInputStream(in)) {
      final Iterator<ImageReader> readers = ImageIO.getImageReaders(stream);
      if (!readers.hasNext()) {
        throw new DataException(
            file.name() + ": not a JPEG or PNG image ImageIO can decode; remove or convert it");
      }
      final ImageReader reader = readers.next();
      final List<String> truncation = new ArrayList<>();
      reader.addIIOReadWarningListener(
          (source, warning) -> {
            if (warning.startsWith("Truncated File")
                || warning.toLowerCase(Locale.ROOT).contains("premature end")) {
              truncation.add(warning);
            }
          });
      final BufferedImage image;
      try {
        reader.setInput(stream, true, true);
        image = reader.read(0);
      } catch (IIOException e) {
        throw endsEarly(e)
            ? file.damaged("truncated (" + describe(e) + ")", e)
            : new DataException(
                file.name() + ": cannot decode it (" + describe(e) + "); remove or convert it", e);
      } catch (RuntimeException e) {
        // ImageIO's decoders throw unchecked exceptions on some malformed files too
        throw new DataException(
            file.name() + ": cannot decode it (" + describe(e) + "); remove or convert it", e);
      } finally {
        reader.dispose();
      }
      if (!truncation.isEmpty()) {
        throw file.damaged("truncated (" + truncation.get(0) + ")", null);
      }
      return image;
    }
  }

  /** Whether a decoder's error comes from the data ending before the image did. */
  private static boolean endsEarly(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause instanceof EOFException) {
        return true;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return false;
  }

  /** An error and its cause's, in one line: "Error reading PNG image data: Unexpected end ...". */
  private static String describe(Throwable e) {
    final StringBuilder text = new StringBuilder();
    for (Throwable cause = e; cause != null && text.length() < 200; cause = cause.getCause()) {
      final String message = cause.getMessage();
      final String line =
          message == null || message.isBlank()
              ? cause.getClass().getSimpleName()
              : message.lines().findFirst().orElse(message);
      if (!text.toString().contains(line)) {
        text.append(text.length() == 0 ? "" : ": ").append(line);
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return text.toString();
  }

  private static String extension(String name) {
    final int dot = name.lastIndexOf('.');
    return dot < 0 ? "" : name.substring(dot + 1).toLowerCase(Locale.ROOT);
  }
}
