package io.lockstep.protocol;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The UDP socket buffers of a media driver. The server's answers go to every worker at once
 * (Aeron's multi-destination cast), each as far ahead as that worker's receive window allows (128
 * KiB), and every datagram a qdisc still holds counts against the socket's send buffer. With the
 * kernel's default (208 KiB) the sends of two workers' windows already overflow it wherever the
 * path queues: Aeron counts a short send, the workers ask for the gap again, and the
 * retransmissions go to every worker. Measured between namespaced hosts on links shaped to 200
 * Mbit/s ({@code bench/scaling.sh 200mbit 8 params=11173962 n2-s1-none}): a 44.7 MB synchronization
 * took 1.6 to 1.9 times the wire's time with the defaults, 1.01 times with both buffers at 2 MiB.
 */
public final class SocketBuffers {
  private static final Logger LOG = LoggerFactory.getLogger(SocketBuffers.class);

  /** What each buffer should hold: the windows of 16 workers' streams in flight at once. */
  static final int WANTED_BYTES = 2 << 20;

  /** The kernel's ceilings on what a process may ask for, on Linux. */
  static final Path SEND_LIMIT = Path.of("/proc/sys/net/core/wmem_max");

  static final Path RECEIVE_LIMIT = Path.of("/proc/sys/net/core/rmem_max");

  /** The ceilings this process has warned of. */
  private static final Set<String> WARNED = ConcurrentHashMap.newKeySet();

  private SocketBuffers() {}

  /**
   * @param udp whether the driver will open UDP sockets (only then is a low ceiling worth a
   *     warning)
   * @return the send buffer to ask for, in bytes; 0 leaves the kernel's default
   */
  static int sendBytes(boolean udp) {
    return size(SEND_LIMIT, "net.core.wmem_max", 0, udp);
  }

  /**
   * @param least what Aeron needs at the least (the receive window); also the size where the
   *     ceiling cannot be read
   * @param udp whether the driver will open UDP sockets
   * @return the receive buffer to ask for, in bytes
   */
  static int receiveBytes(int least, boolean udp) {
    return Math.max(least, size(RECEIVE_LIMIT, "net.core.rmem_max", least, udp));
  }

  /**
   * {@link #WANTED_BYTES}, or the kernel's ceiling in {@code limit} where that is lower (asking for
   * more gets the ceiling and a warning from Aeron on every launch); {@code fallback} where the
   * ceiling cannot be read. Warns once per process and ceiling when it is lower and {@code warn}.
   */
  static int size(Path limit, String sysctl, int fallback, boolean warn) {
    final long ceiling;
    // a reader, not Files.readString: procfs files claim a size of 0, and JDK 17's readString then
    // returns their first character alone
    try (BufferedReader reader = Files.newBufferedReader(limit)) {
      final String line = reader.readLine();
      ceiling = Long.parseLong(line == null ? "" : line.trim());
    } catch (IOException | NumberFormatException e) {
      return fallback;
    }
    if (ceiling < WANTED_BYTES && warn && WARNED.add(sysctl)) {
      LOG.warn(
          "{} is {} bytes: UDP synchronization may lose datagrams to full socket buffers and"
              + " resend them; allow {} (sysctl -w {}={}) on every host",
          sysctl,
          ceiling,
          WANTED_BYTES,
          sysctl,
          WANTED_BYTES);
    }
    return (int) Math.min(WANTED_BYTES, ceiling);
  }
}
