package io.lockstep.data;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import javax.imageio.ImageIO;
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

  /**
   * Lists one split.
   *
   * @param root a folder or Hadoop URI holding {@code train/} and {@code val/}
   * @param split {@code train} or {@code val}
   * @return the index: every image's path and label
   * @throws DataException naming the folder when it is missing, has no class folders, or a class
   *     folder has no images
   */
  public static ImageFolder list(String root, String split) {
    final Path dir = new Path(new Path(root), split);
    try {
      final FileSystem fs = dir.getFileSystem(new Configuration());
      if (!fs.isDirectory(dir)) {
        throw new DataException(
            dir
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
            dir + " has no class folders; put each class's images in " + dir + "/<class>/");
      }
      final List<String> classes = new ArrayList<>();
      final List<String> paths = new ArrayList<>();
      final List<Integer> labels = new ArrayList<>();
      for (FileStatus classDir : classDirs) {
        final int label = classes.size();
        classes.add(classDir.getPath().getName());
        final List<Path> images =
            Arrays.stream(fs.listStatus(classDir.getPath()))
                .filter(FileStatus::isFile)
                .map(FileStatus::getPath)
                .filter(p -> EXTENSIONS.contains(extension(p.getName())))
                .sorted(Comparator.comparing(Path::getName))
                .toList();
        if (images.isEmpty()) {
          throw new DataException(
              classDir.getPath()
                  + " has no images (."
                  + String.join(", .", EXTENSIONS.stream().sorted().toList())
                  + "); remove the folder or add its images");
        }
        for (Path image : images) {
          paths.add(image.toString());
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
      throw new DataException(dir + ": cannot list (" + e.getMessage() + ")", e);
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
   * @throws DataException naming the file when it cannot be read or is not an image
   */
  public Image decode(int index) {
    final Path path = new Path(paths.get(index));
    try {
      final FileSystem fs = path.getFileSystem(new Configuration());
      final BufferedImage image;
      try (InputStream in = fs.open(path)) {
        image = ImageIO.read(in);
      }
      if (image == null) {
        throw new DataException(
            path + ": not a JPEG or PNG image ImageIO can decode; remove or convert the file");
      }
      return Image.fromRgb(image);
    } catch (IOException e) {
      throw new DataException(path + ": cannot read (" + e.getMessage() + ")", e);
    }
  }

  private static String extension(String name) {
    final int dot = name.lastIndexOf('.');
    return dot < 0 ? "" : name.substring(dot + 1).toLowerCase(Locale.ROOT);
  }
}
