package io.lockstep.protocol;

import io.lockstep.conf.Transport;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import org.agrona.IoUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The gradients of a job whose workers share the server's host, in one file of the server's Aeron
 * directory: a slot per rank, where each worker writes its chunks, and one for the sum, where the
 * server writes its answers. The frames then carry no payload ({@link ChunkCodec#SHARED}): a
 * chunk's floats are at its place in the sender's slot. That saves what a payload in Aeron's terms
 * costs besides the copies (the media driver zeroing every used term, the back-pressure of full
 * terms) and lets the server read every worker's chunk where it was written.
 *
 * <p>A frame is published after its chunk is written (Aeron's offer is a release, its poll an
 * acquire), and a slot's chunk is written again only for the next step, after the server has
 * answered it; the sum's chunk is written again only once every worker sent the next step's, so
 * after each had read it. Used where frames go untagged over IPC to a synchronous server ({@link
 * #carries}): the directory is its user's alone ({@link AeronDirectories#restrict}), as are the
 * terms the frames would otherwise travel in.
 */
public final class SharedGradients implements AutoCloseable {
  /** The file's name in the server's Aeron directory. */
  public static final String FILE_NAME = "lockstep-gradients";

  private final MappedByteBuffer[] maps;
  private final UnsafeBuffer[] slots;
  private final UnsafeBuffer sum;

  private SharedGradients(MappedByteBuffer[] maps, UnsafeBuffer[] slots, UnsafeBuffer sum) {
    this.maps = maps;
    this.slots = slots;
    this.sum = sum;
  }

  /**
   * Whether a job's chunks go through shared memory: over IPC, untagged, to a synchronous server.
   *
   * @param address the job's (first) shard
   */
  public static boolean carries(ServerAddress address) {
    return address.transport() == Transport.IPC && !address.key().tags() && !address.asynchronous();
  }

  /**
   * Makes the file for the server, readable and writable by its user alone.
   *
   * @param shards the job's shards, all in one Aeron directory
   */
  public static SharedGradients create(ServerShards shards) {
    final Path file = file(shards.shard(0));
    try {
      Files.createFile(
          file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot make " + file + " for the job's gradients", e);
    }
    return map(file, shards.workers(), shards.parameterCount(), -1);
  }

  /**
   * Maps the server's file for one worker: its own slot and the sum.
   *
   * @param shards the job's shards
   * @param rank the worker's rank
   * @throws ParameterServerException when the server made no such file
   */
  public static SharedGradients open(ServerShards shards, int rank) {
    final Path file = file(shards.shard(0));
    if (!Files.isRegularFile(file)) {
      throw new ParameterServerException(
          "worker "
              + rank
              + ": no "
              + file
              + ": the server of this job runs in another process that does not share its"
              + " gradients' memory; start workers and server from the same Lockstep version");
    }
    return map(file, shards.workers(), shards.parameterCount(), rank);
  }

  private static Path file(ServerAddress address) {
    return Path.of(address.aeronDirectory(), FILE_NAME);
  }

  /** Maps every slot ({@code rank} -1) or one rank's, and the sum's, which follows the slots. */
  private static SharedGradients map(Path file, int workers, int parameters, int rank) {
    final long bytes = (long) parameters * Float.BYTES;
    final MappedByteBuffer[] maps = new MappedByteBuffer[workers + 1];
    final UnsafeBuffer[] slots = new UnsafeBuffer[workers];
    try (FileChannel channel =
        FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      for (int slot = 0; slot <= workers; slot++) {
        if (rank < 0 || slot == rank || slot == workers) {
          maps[slot] = channel.map(FileChannel.MapMode.READ_WRITE, slot * bytes, bytes);
        }
      }
    } catch (NoSuchFileException e) {
      unmap(maps);
      throw new ParameterServerException("the job's gradients' memory " + file + " is gone");
    } catch (IOException e) {
      unmap(maps);
      throw new UncheckedIOException("cannot map " + file, e);
    }
    for (int slot = 0; slot < workers; slot++) {
      slots[slot] = maps[slot] == null ? null : new UnsafeBuffer(maps[slot]);
    }
    return new SharedGradients(maps, slots, new UnsafeBuffer(maps[workers]));
  }

  /**
   * @param rank a worker's rank
   * @return its slot, the whole vector; where this process mapped it
   */
  public UnsafeBuffer slot(int rank) {
    return slots[rank];
  }

  /**
   * @return the sum's slot, the whole vector
   */
  public UnsafeBuffer sum() {
    return sum;
  }

  /** Unmaps what this process mapped; the file goes with the server's Aeron directory. */
  @Override
  public void close() {
    unmap(maps);
  }

  private static void unmap(MappedByteBuffer[] maps) {
    for (int m = 0; m < maps.length; m++) {
      if (maps[m] != null) {
        IoUtil.unmap(maps[m]);
        maps[m] = null;
      }
    }
  }
}
