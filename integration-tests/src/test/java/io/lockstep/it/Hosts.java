package io.lockstep.it;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hosts on one machine: each a Linux network namespace of its own (its own network stack, address,
 * loopback and routes), joined by a bridge that lives in a namespace of its own, on 198.18.0.0/24.
 * Processes started on a host run in its namespace, under its own host name, which every host's
 * {@code /etc/hosts} resolves, as on a real cluster. Each host's link can be shaped and cut. The
 * filesystem is shared, so every host sees the same jars and data.
 *
 * <p>Needs root. {@link #close} kills every process it started and removes every namespace and file
 * it made; a JVM killed before it could do so leaves namespaces named after its pid, which the next
 * {@link #create} removes.
 */
final class Hosts implements AutoCloseable {
  /** Namespaces are named {@code lkPIDb} (the bridge) and {@code lkPIDhN} (host N). */
  private static final Pattern OURS = Pattern.compile("lk(\\d+)[bh]\\d*");

  private static final String SUBNET = "198.18.0.";
  private static final int FIRST_ADDRESS = 10;

  private final String prefix;
  private final int count;
  private final List<Process> processes = new ArrayList<>();
  private final Thread cleanup = new Thread(this::removeAll, "hosts-cleanup");

  private Hosts(String prefix, int count) {
    this.prefix = prefix;
    this.count = count;
  }

  /**
   * Makes {@code count} hosts, {@code h0} at 198.18.0.10 and so on, with 1500-byte MTUs.
   *
   * @param count how many hosts
   * @return the hosts
   * @throws IOException when a namespace or link cannot be made (not root, no {@code ip})
   */
  static Hosts create(int count) throws IOException {
    removeStale();
    final Hosts hosts = new Hosts("lk" + ProcessHandle.current().pid(), count);
    Runtime.getRuntime().addShutdownHook(hosts.cleanup);
    try {
      hosts.build();
    } catch (IOException | RuntimeException e) {
      hosts.close();
      throw e;
    }
    return hosts;
  }

  private void build() throws IOException {
    final String bridge = prefix + "b";
    run("ip", "netns", "add", bridge);
    run("ip", "-n", bridge, "link", "add", "br0", "type", "bridge");
    run("ip", "-n", bridge, "link", "set", "br0", "up");
    final StringBuilder names = new StringBuilder("127.0.0.1 localhost\n");
    for (int i = 0; i < count; i++) {
      names.append(address(i)).append(' ').append(name(i)).append('\n');
    }
    for (int i = 0; i < count; i++) {
      final String host = namespace(i);
      final String veth = prefix + "v" + i;
      run("ip", "netns", "add", host);
      // ip netns exec mounts /etc/netns/NAME/hosts over /etc/hosts for the host's processes
      final Path etc = Path.of("/etc/netns", host);
      Files.createDirectories(etc);
      Files.writeString(etc.resolve("hosts"), names, StandardCharsets.UTF_8);
      run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host);
      run("ip", "link", "set", veth, "netns", bridge);
      run("ip", "-n", bridge, "link", "set", veth, "master", "br0", "up");
      run("ip", "-n", host, "addr", "add", address(i) + "/24", "dev", "eth0");
      run("ip", "-n", host, "link", "set", "eth0", "up");
      run("ip", "-n", host, "link", "set", "lo", "up");
    }
  }

  /**
   * @param host a host's index
   * @return its address, 198.18.0.(10 + host)
   */
  String address(int host) {
    return SUBNET + (FIRST_ADDRESS + host);
  }

  /**
   * @param host a host's index
   * @return its host name, {@code h0}, {@code h1}, ...
   */
  String name(int host) {
    return "h" + host;
  }

  private String namespace(int host) {
    return prefix + "h" + host;
  }

  /**
   * Starts {@code command} on {@code host}, under its host name, output to {@code log}.
   *
   * @param host a host's index
   * @param log where the process's output goes
   * @param environment variables set for it, over this JVM's
   * @param command the command line
   * @return the process, stopped by {@link #close} if not before
   */
  Process start(int host, Path log, Map<String, String> environment, List<String> command)
      throws IOException {
    final List<String> line = new ArrayList<>();
    line.addAll(List.of("ip", "netns", "exec", namespace(host), "unshare", "--uts", "sh", "-c"));
    line.add("hostname \"$0\" && exec \"$@\"");
    line.add(name(host));
    line.addAll(command);
    final ProcessBuilder builder =
        new ProcessBuilder(line)
            .redirectErrorStream(true)
            .redirectOutput(log.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
    // nothing pins an address on a host but what the host's own network gives
    builder.environment().remove("SPARK_LOCAL_IP");
    builder.environment().remove("SPARK_LOCAL_HOSTNAME");
    builder.environment().putAll(environment);
    final Process process = builder.start();
    synchronized (processes) {
      processes.add(process);
    }
    return process;
  }

  /**
   * Shapes both directions of {@code host}'s link to {@code rate} (as {@code tc} writes it: {@code
   * 500mbit}) with a token bucket.
   */
  void shape(int host, String rate) throws IOException {
    for (String[] side :
        new String[][] {{namespace(host), "eth0"}, {prefix + "b", prefix + "v" + host}}) {
      run(
          "ip", "netns", "exec", side[0], "tc", "qdisc", "replace", "dev", side[1], "root", "tbf",
          "rate", rate, "burst", "256kb", "latency", "50ms");
    }
  }

  /** Kills every process on {@code host} at once, and waits until they are gone. */
  void kill(int host) throws IOException {
    final List<ProcessHandle> killed = new ArrayList<>();
    for (String pid : output("ip", "netns", "pids", namespace(host)).split("\\s+")) {
      if (!pid.isBlank()) {
        ProcessHandle.of(Long.parseLong(pid)).ifPresent(killed::add);
      }
    }
    killed.forEach(ProcessHandle::destroyForcibly);
    for (ProcessHandle process : killed) {
      try {
        process.onExit().get(10, TimeUnit.SECONDS);
      } catch (Exception e) {
        throw new IOException(
            "process " + process.pid() + " on " + name(host) + " outlived KILL", e);
      }
    }
  }

  /** Takes {@code host}'s link down ({@code up} false) or up again. */
  void link(int host, boolean up) throws IOException {
    run("ip", "-n", namespace(host), "link", "set", "eth0", up ? "up" : "down");
  }

  /**
   * @param host a host's index
   * @return the IP fragments {@code host}'s stack has made of datagrams larger than its links' MTU
   *     (its {@code /proc/net/snmp} FragCreates)
   */
  long fragmentsCreated(int host) throws IOException {
    final String snmp = output("ip", "netns", "exec", namespace(host), "cat", "/proc/net/snmp");
    final String[] lines = snmp.split("\n");
    for (int i = 0; i + 1 < lines.length; i++) {
      if (lines[i].startsWith("Ip: ") && lines[i + 1].startsWith("Ip: ")) {
        final List<String> names = List.of(lines[i].substring(4).trim().split("\\s+"));
        final String[] values = lines[i + 1].substring(4).trim().split("\\s+");
        return Long.parseLong(values[names.indexOf("FragCreates")]);
      }
    }
    throw new IllegalStateException("no Ip counters in /proc/net/snmp of " + name(host));
  }

  @Override
  public void close() {
    removeAll();
    try {
      Runtime.getRuntime().removeShutdownHook(cleanup);
    } catch (IllegalStateException shuttingDown) {
      // the hook is running or ran: nothing left to remove
    }
  }

  private void removeAll() {
    final List<Process> started;
    synchronized (processes) {
      started = new ArrayList<>(processes);
      processes.clear();
    }
    for (Process process : started) {
      process.descendants().forEach(ProcessHandle::destroyForcibly);
      process.destroyForcibly();
    }
    for (Process process : started) {
      try {
        process.onExit().get(10, TimeUnit.SECONDS);
      } catch (Exception e) {
        // reported by the namespace removal below when it matters
      }
    }
    for (int i = 0; i < count; i++) {
      removeNamespace(namespace(i));
    }
    removeNamespace(prefix + "b");
  }

  /** Removes the namespaces of JVMs that died without removing theirs. */
  private static void removeStale() throws IOException {
    for (String line : output("ip", "netns", "list").split("\n")) {
      final String name = line.split("\\s+")[0];
      final Matcher ours = OURS.matcher(name);
      if (ours.matches()
          && ProcessHandle.of(Long.parseLong(ours.group(1))).map(h -> !h.isAlive()).orElse(true)) {
        removeNamespace(name);
      }
    }
  }

  private static void removeNamespace(String name) {
    try {
      // processes left in it would keep its links alive
      final String pids = output("ip", "netns", "pids", name);
      for (String pid : pids.split("\\s+")) {
        if (!pid.isBlank()) {
          ProcessHandle.of(Long.parseLong(pid)).ifPresent(ProcessHandle::destroyForcibly);
        }
      }
      run("ip", "netns", "delete", name);
    } catch (IOException | RuntimeException e) {
      // already gone
    }
    try {
      final Path etc = Path.of("/etc/netns", name);
      Files.deleteIfExists(etc.resolve("hosts"));
      Files.deleteIfExists(etc);
      // /etc/netns itself too, unless something else keeps files there
      try {
        Files.deleteIfExists(etc.getParent());
      } catch (java.nio.file.DirectoryNotEmptyException others) {
        // another namespace's files: not ours to remove
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static void run(String... command) throws IOException {
    output(command);
  }

  private static String output(String... command) throws IOException {
    final Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
    final String output =
        new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    try {
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        throw new IOException(String.join(" ", command) + ": no answer in 30 s");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(String.join(" ", command) + ": interrupted", e);
    }
    if (process.exitValue() != 0) {
      throw new IOException(
          String.join(" ", command) + " exited " + process.exitValue() + ": " + output.trim());
    }
    return output;
  }
}
