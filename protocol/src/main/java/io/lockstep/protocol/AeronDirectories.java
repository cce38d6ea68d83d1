package io.lockstep.protocol;

import io.aeron.CncFileDescriptor;
import io.aeron.CommonContext;
import java.io.File;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.agrona.IoUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Aeron directories Lockstep's media drivers make ({@code lockstep-*} in {@code /dev/shm} or
 * the temporary directory): a process removes its own when it ends, normally or not, and removes
 * those of processes that died without doing so (killed, or lost with their host's power).
 */
public final class AeronDirectories {
  private static final Logger LOG = LoggerFactory.getLogger(AeronDirectories.class);

  /** What every directory of Lockstep's drivers is named with. */
  public static final String PREFIX = "lockstep-";

  /**
   * How long a driver may go without a heartbeat and still be taken for alive: Aeron's own driver
   * timeout.
   */
  public static final Duration DRIVER_TIMEOUT = Duration.ofSeconds(10);

  /**
   * How old a directory without a control file may be before it is taken for a leftover: a driver
   * writes its control file as it starts, milliseconds after making the directory.
   */
  public static final Duration UNSTARTED_AGE = Duration.ofMinutes(10);

  /** The directories this process's drivers made and may still hold. */
  private static final Set<Path> OWN = ConcurrentHashMap.newKeySet();

  static {
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> OWN.forEach(directory -> IoUtil.delete(directory.toFile(), true)),
                "lockstep-aeron-directories"));
  }

  private AeronDirectories() {}

  /**
   * @return where Lockstep's drivers put their directories: {@code /dev/shm} where there is one,
   *     the temporary directory otherwise
   */
  public static Path base() {
    final Path shm = Path.of("/dev/shm");
    return Files.isDirectory(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
  }

  /**
   * Notes that this process's driver holds {@code directory}, so that it is removed when the
   * process ends, even by a signal that skips the driver's own close; forgets directories already
   * gone.
   *
   * @param directory the driver's directory
   */
  static void own(Path directory) {
    OWN.removeIf(owned -> !Files.exists(owned));
    OWN.add(directory);
  }

  /**
   * Makes a driver's directory its user's alone, as the driver starts: the directory {@code
   * rwx------} and what is in it already (the control file, the first terms) {@code rw-------}.
   * Aeron makes them as the process's umask allows (usually readable by all); with the directory
   * closed, no other user can open a term that comes later either. On IPC this is what keeps other
   * users from reading gradients and writing frames ({@code lockstep.ps.frame-tags=network} leaves
   * IPC frames untagged on its strength).
   *
   * @param directory a driver's directory
   * @throws IllegalStateException when the permissions cannot be set
   */
  static void restrict(Path directory) {
    if (Files.getFileAttributeView(directory, PosixFileAttributeView.class) == null) {
      return; // no POSIX permissions on this file system
    }
    try {
      Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString("rwx------"));
      try (Stream<Path> inside = Files.walk(directory)) {
        for (Path path : (Iterable<Path>) inside::iterator) {
          if (!path.equals(directory)) {
            Files.setPosixFilePermissions(
                path,
                PosixFilePermissions.fromString(
                    Files.isDirectory(path) ? "rwx------" : "rw-------"));
          }
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException(
          "cannot make the Aeron directory " + directory + " its user's alone: " + e, e);
    }
  }

  /**
   * Removes the {@code lockstep-*} directories under {@code base} whose process is gone: its
   * control file's driver has not been active for {@link #DRIVER_TIMEOUT} and the process it names
   * no longer runs, or, without a control file, the directory is older than {@link #UNSTARTED_AGE}.
   * A directory whose process runs is never touched, however long its driver has been quiet.
   *
   * @param base the folder to clean
   * @return the directories removed
   */
  public static List<Path> removeStale(Path base) {
    final List<Path> removed = new ArrayList<>();
    if (!Files.isDirectory(base)) {
      return removed;
    }
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(base, PREFIX + "*")) {
      for (Path directory : entries) {
        if (Files.isDirectory(directory) && !OWN.contains(directory) && isStale(directory)) {
          IoUtil.delete(directory.toFile(), true);
          if (!Files.exists(directory)) {
            removed.add(directory);
          }
        }
      }
    } catch (IOException e) {
      LOG.warn(
          "{}: cannot list it to remove dead processes' Aeron directories ({})",
          base,
          e.getMessage());
    }
    if (!removed.isEmpty()) {
      LOG.info(
          "removed {} Aeron director{} of processes that ended without removing them: {}",
          removed.size(),
          removed.size() == 1 ? "y" : "ies",
          removed);
    }
    return removed;
  }

  private static boolean isStale(Path directory) {
    final File cnc = directory.resolve(CncFileDescriptor.CNC_FILE).toFile();
    try {
      if (!cnc.isFile() || cnc.length() < CncFileDescriptor.META_DATA_LENGTH) {
        return Files.getLastModifiedTime(directory)
            .toInstant()
            .isBefore(Instant.now().minus(UNSTARTED_AGE));
      }
      if (isActive(directory)) {
        return false;
      }
      final MappedByteBuffer mapped = IoUtil.mapExistingFile(cnc, "cnc");
      final long pid;
      try {
        pid = CncFileDescriptor.pid(CncFileDescriptor.createMetaDataBuffer(mapped));
      } finally {
        IoUtil.unmap(mapped);
      }
      return pid <= 0 || !ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
    } catch (IOException | RuntimeException e) {
      // being made or being removed by its owner right now: leave it
      return false;
    }
  }

  private static boolean isActive(Path directory) {
    try {
      return CommonContext.isDriverActive(
          directory.toFile(), DRIVER_TIMEOUT.toMillis(), message -> {});
    } catch (RuntimeException e) { // an unready or damaged control file: Aeron's timeout exception
      return false;
    }
  }
}
