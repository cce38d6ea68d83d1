package io.lockstep.driver;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.AeronDirectories;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.RemoteShards;
import io.lockstep.ps.RunningServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Collections;
import java.util.List;
import java.util.StringJoiner;
import java.util.stream.Collectors;
import org.apache.spark.SparkConf;

/**
 * Where and how a run's parameter server starts: its host and address on the cluster network, the
 * chunk size its network carries unfragmented, the job's frame key, and the server itself, in the
 * driver's JVM or as the shard processes of {@code lockstep.ps.shard-servers}.
 */
final class ServerPlacement {
  /**
   * The secret of {@code lockstep.ps.secret-file}, read once before anything starts; null when the
   * servers run in this JVM.
   */
  static byte[] secret(JobConfig job) {
    if (job.get(Keys.PS_SECRET_FILE).isBlank()) {
      return null;
    }
    try {
      return FrameKey.readSecret(Path.of(job.get(Keys.PS_SECRET_FILE)), Keys.PS_SECRET_FILE.name());
    } catch (IllegalArgumentException e) {
      throw new ConfigurationException(e.getMessage());
    }
  }

  /**
   * The address the parameter server binds and workers reach it at: {@code lockstep.ps.interface}'s
   * IPv4 address, else {@code lockstep.ps.host}, else the driver's own, 127.0.0.1 in local mode and
   * on a cluster the address of {@code spark.driver.host}, which Spark's executors reach already.
   * Over UDP the address must be one of this host's.
   *
   * @throws ConfigurationException when the interface or the address is not this host's
   */
  static String serverHost(JobConfig job, String master, SparkConf conf) {
    if (!job.get(Keys.PS_INTERFACE).isEmpty()) {
      return interfaceAddress(job.get(Keys.PS_INTERFACE));
    }
    final String host;
    if (!job.get(Keys.PS_HOST).isEmpty()) {
      host = job.get(Keys.PS_HOST);
    } else if (SparkSettings.isLocal(master)) {
      host = "127.0.0.1";
    } else {
      host = conf.get("spark.driver.host", "127.0.0.1");
    }
    if (job.get(Keys.TRANSPORT) != Transport.UDP) {
      return host;
    }
    // the setting that named the host, for the messages
    final String named =
        (job.get(Keys.PS_HOST).isEmpty() ? "spark.driver.host=" : Keys.PS_HOST.name() + "=") + host;
    final InetAddress address;
    try {
      address = InetAddress.getByName(host);
    } catch (UnknownHostException e) {
      throw new ConfigurationException(
          named
              + " does not resolve on the driver; set "
              + Keys.PS_HOST.name()
              + " to the driver's address on the cluster network");
    }
    try {
      if (!address.isLoopbackAddress() && NetworkInterface.getByInetAddress(address) == null) {
        throw new ConfigurationException(
            named
                + " ("
                + address.getHostAddress()
                + ") is no address of the driver's host, whose addresses are "
                + hostAddresses()
                + "; set "
                + Keys.PS_HOST.name()
                + " to one the executors reach, or "
                + Keys.PS_INTERFACE.name()
                + " to its interface");
      }
    } catch (SocketException e) {
      throw new UncheckedIOException(e);
    }
    return address.getHostAddress();
  }

  /**
   * The gradient chunk: {@code lockstep.ps.chunk-size} when set, else the largest that crosses the
   * network unfragmented: the largest Aeron frame over IPC; over UDP, what one datagram on the
   * server interface's MTU carries, so no gradient is IP-fragmented on the way.
   */
  static int chunkBytes(JobConfig job, String host) {
    if (job.get(Keys.PS_CHUNK_SIZE) != 0) {
      return job.get(Keys.PS_CHUNK_SIZE).intValue();
    }
    if (job.get(Keys.TRANSPORT) != Transport.UDP) {
      return (int) JobConfig.largestChunkBytes(job.get(Keys.PS_TERM_LENGTH));
    }
    try {
      final NetworkInterface network =
          NetworkInterface.getByInetAddress(InetAddress.getByName(host));
      final int mtu = network == null ? 1500 : network.getMTU();
      return (int) JobConfig.chunkBytesForMtu(mtu, job.get(Keys.PS_TERM_LENGTH));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The first IPv4 address of the interface {@code name}. */
  private static String interfaceAddress(String name) {
    try {
      final NetworkInterface network = NetworkInterface.getByName(name);
      if (network == null) {
        throw new ConfigurationException(
            Keys.PS_INTERFACE.name()
                + "="
                + name
                + ": no such interface on the driver's host; it has "
                + hostAddresses());
      }
      return network
          .inetAddresses()
          .filter(Inet4Address.class::isInstance)
          .map(InetAddress::getHostAddress)
          .findFirst()
          .orElseThrow(
              () ->
                  new ConfigurationException(
                      Keys.PS_INTERFACE.name()
                          + "="
                          + name
                          + " has no IPv4 address; the driver's host has "
                          + hostAddresses()));
    } catch (SocketException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** This host's interfaces and their addresses, for an error message. */
  private static String hostAddresses() {
    final List<NetworkInterface> networks;
    try {
      networks = Collections.list(NetworkInterface.getNetworkInterfaces());
    } catch (SocketException e) {
      return "(interfaces unreadable: " + e.getMessage() + ")";
    }
    final StringJoiner all = new StringJoiner(", ");
    for (NetworkInterface network : networks) {
      final String addresses =
          network
              .inetAddresses()
              .filter(Inet4Address.class::isInstance)
              .map(InetAddress::getHostAddress)
              .collect(Collectors.joining(" "));
      all.add(network.getName() + (addresses.isEmpty() ? "" : " " + addresses));
    }
    return all.toString();
  }

  /**
   * A new parameter server's address, under a job id and frame key of its own (its frames are told
   * apart): a random key for servers in this JVM (none where {@code lockstep.ps.frame-tags} leaves
   * the transport's frames untagged), else the one the shard processes derive from the shared
   * secret.
   */
  static ServerAddress serverAddress(
      JobConfig job, String host, int parameters, byte[] secret, int workers) {
    final long jobId = new SecureRandom().nextLong();
    return new ServerAddress(
            job.get(Keys.TRANSPORT),
            aeronDirectory(jobId),
            host,
            job.get(Keys.PS_PORT),
            job.get(Keys.PS_TERM_LENGTH).intValue(),
            chunkBytes(job, host),
            jobId,
            workers,
            parameters,
            secret != null
                ? FrameKey.forJob(secret, jobId)
                : job.get(Keys.PS_FRAME_TAGS).on(job.get(Keys.TRANSPORT))
                    ? FrameKey.random()
                    : FrameKey.none())
        .withMode(job.get(Keys.PS_MODE), job.get(Keys.PS_STALENESS));
  }

  /**
   * Starts the job's parameter server: {@code lockstep.ps.shards} shards in this JVM, or the
   * standalone shard processes of {@code lockstep.ps.shard-servers}, configured for this job.
   */
  static RunningServer launchServer(
      JobConfig job, String host, ServerAddress address, long firstStep) {
    if (!job.get(Keys.PS_SHARD_SERVERS).isEmpty()) {
      return RemoteShards.configure(
          new RemoteShards.Context()
              .servers(job.get(Keys.PS_SHARD_SERVERS))
              .address(address)
              .replyHost(host)
              .stepTimeout(job.get(Keys.STEP_TIMEOUT))
              .connectTimeout(job.get(Keys.CONNECT_TIMEOUT))
              .firstStep(firstStep));
    }
    final ServerShards shards;
    try {
      shards = ServerShards.split(address, job.get(Keys.PS_SHARDS));
    } catch (IllegalArgumentException e) {
      throw new ConfigurationException(
          Keys.PS_SHARDS.name() + "=" + job.get(Keys.PS_SHARDS) + ": " + e.getMessage());
    }
    return ParameterServer.launch(
        new ParameterServer.Context()
            .shards(shards)
            .stepTimeout(job.get(Keys.STEP_TIMEOUT))
            .firstStep(firstStep));
  }

  private static String aeronDirectory(long jobId) {
    return AeronDirectories.base()
        .resolve(AeronDirectories.PREFIX + Long.toHexString(jobId))
        .toString();
  }

  private ServerPlacement() {}
}
