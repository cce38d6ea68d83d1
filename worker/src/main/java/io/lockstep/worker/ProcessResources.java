package io.lockstep.worker;

import com.sun.management.GarbageCollectorMXBean;
import com.sun.management.GcInfo;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bytedeco.javacpp.Pointer;

/**
 * What a JVM holds at one moment: the figures a long run must keep flat. The driver writes them for
 * itself and every executor into each epoch's line of {@code metrics.jsonl}; {@code bench/soak.sh}
 * tabulates them.
 *
 * @param process {@code driver}, or {@code executor ID}
 * @param host the host the process runs on
 * @param pid the process id on that host
 * @param residentBytes resident memory (Linux's {@code VmRSS}), everything the process holds
 * @param heapAfterGcBytes the Java heap in use after the last garbage collection
 * @param heapCommittedBytes the Java heap the JVM has committed, part of {@code residentBytes} as
 *     far as it was touched
 * @param offHeapBytes native memory JavaCPP allocated for ND4J arrays and oneDNN objects and has
 *     not freed ({@code Pointer.totalBytes()})
 * @param threads live Java threads
 * @param openFiles open file descriptors, sockets among them; -1 where the system does not say
 */
public record ProcessResources(
    String process,
    String host,
    long pid,
    long residentBytes,
    long heapAfterGcBytes,
    long heapCommittedBytes,
    long offHeapBytes,
    int threads,
    int openFiles)
    implements Serializable {

  private static final Path STATUS = Path.of("/proc/self/status");
  private static final Path FDS = Path.of("/proc/self/fd");

  /**
   * Measures this JVM now.
   *
   * @param process what this process is to the job: {@code driver}, {@code executor 3}
   * @param host the host it runs on, as the job names it
   * @return the figures
   */
  public static ProcessResources measure(String process, String host) {
    return new ProcessResources(
        process,
        host,
        ProcessHandle.current().pid(),
        readResidentBytes(),
        heapAfterLastGc(),
        ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted(),
        Pointer.totalBytes(),
        ManagementFactory.getThreadMXBean().getThreadCount(),
        countOpenFiles());
  }

  /**
   * @param other another measurement
   * @return whether this is the same process as {@code other}
   */
  boolean sameProcess(ProcessResources other) {
    return pid == other.pid && host.equals(other.host);
  }

  /** Resident memory from {@code /proc}; JavaCPP's figure where there is no {@code /proc}. */
  private static long readResidentBytes() {
    if (Files.isReadable(STATUS)) {
      try {
        for (String line : Files.readAllLines(STATUS)) {
          if (line.startsWith("VmRSS:")) {
            return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(STATUS + ": unreadable", e);
      }
    }
    return Pointer.physicalBytes();
  }

  /** The heap after the most recent collection of any collector; the heap in use before any. */
  private static long heapAfterLastGc() {
    GcInfo latest = null;
    for (java.lang.management.GarbageCollectorMXBean bean :
        ManagementFactory.getGarbageCollectorMXBeans()) {
      if (bean instanceof GarbageCollectorMXBean collector) {
        final GcInfo info = collector.getLastGcInfo();
        if (info != null && (latest == null || info.getEndTime() > latest.getEndTime())) {
          latest = info;
        }
      }
    }
    if (latest == null) {
      return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }
    long used = 0;
    for (var pool : ManagementFactory.getMemoryPoolMXBeans()) {
      if (pool.getType() == java.lang.management.MemoryType.HEAP) {
        final MemoryUsage after = latest.getMemoryUsageAfterGc().get(pool.getName());
        used += after == null ? 0 : after.getUsed();
      }
    }
    return used;
  }

  private static int countOpenFiles() {
    if (!Files.isDirectory(FDS)) {
      return -1;
    }
    int count = 0;
    try (DirectoryStream<Path> fds = Files.newDirectoryStream(FDS)) {
      for (Path ignored : fds) {
        count++;
      }
    } catch (IOException e) {
      return -1;
    }
    return count;
  }
}
