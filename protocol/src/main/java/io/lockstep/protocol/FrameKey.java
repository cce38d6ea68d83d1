package io.lockstep.protocol;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * A job's secret frame key: every frame of the job carries a tag computed with it ({@link
 * FrameTag}), so a peer that does not hold the key cannot have its frames summed, even when it
 * knows the job id and a rank.
 *
 * <p>A server that runs in the driver's JVM uses a {@link #random} key per job (per stage attempt);
 * the workers receive it with the {@link ServerAddress}, inside Spark's task closure (turn on
 * {@code spark.authenticate} and {@code spark.network.crypto.enabled} where the cluster network is
 * not trusted). Standalone shard processes cannot be handed a key by the driver in the clear, so
 * the driver and every shard process read the same secret file and {@link #forJob derive} the job's
 * key from it and the job id.
 *
 * <p>{@link #none} turns tags off: frames carry a zero tag and receivers demand one. IPC jobs use
 * it by default ({@code lockstep.ps.frame-tags=network}: their Aeron directory admits only the
 * job's user, who could read the key anyway), and any job with {@code lockstep.ps.frame-tags=off},
 * for a network where every host is trusted and the cost of the MAC (see {@link FrameTag}) matters.
 *
 * <p>{@link #toString} shows a fingerprint, never the key.
 */
public final class FrameKey implements Serializable {
  private static final long serialVersionUID = 1L;

  /** The tag's algorithm, and the key's length in bytes. */
  static final String ALGORITHM = "HmacSHA256";

  static final int KEY_BYTES = 32;

  /** The least a secret file must hold. */
  public static final int MIN_SECRET_BYTES = 32;

  private static final SecureRandom RANDOM = new SecureRandom();

  private static final FrameKey NONE = new FrameKey(null);

  /** The key's bytes; null for {@link #none}. */
  private final byte[] key;

  private FrameKey(byte[] key) {
    this.key = key;
  }

  /**
   * No key: frames are not authenticated, their tag is zero.
   *
   * @return the key that turns tags off
   */
  public static FrameKey none() {
    return NONE;
  }

  /**
   * @return whether frames are tagged with a MAC, false for {@link #none}
   */
  public boolean tags() {
    return key != null;
  }

  /**
   * A fresh random key, for one job of a server in the driver's JVM.
   *
   * @return the key
   */
  public static FrameKey random() {
    final byte[] key = new byte[KEY_BYTES];
    RANDOM.nextBytes(key);
    return new FrameKey(key);
  }

  /**
   * The key of one job derived from a shared secret: HMAC-SHA256(secret, "lockstep job " || job id,
   * little-endian). The driver and the shard processes derive the same key; a key leaked from one
   * job says nothing of another's.
   *
   * @param secret the secret every party read from the secret file
   * @param jobId the job
   * @return the job's key
   */
  public static FrameKey forJob(byte[] secret, long jobId) {
    final Mac mac = mac(secret);
    mac.update("lockstep job ".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    mac.update(
        ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN).putLong(jobId).flip());
    return new FrameKey(mac.doFinal());
  }

  /**
   * Reads a shared secret file: at least {@value #MIN_SECRET_BYTES} bytes, readable by its owner
   * alone where the file system has POSIX permissions.
   *
   * @param file the file, for example made with {@code head -c 32 /dev/urandom > FILE; chmod 600
   *     FILE}
   * @param what how the user named it (a configuration key or a flag), for the error
   * @return the secret's bytes
   * @throws IllegalArgumentException naming the file and the fix when it cannot serve
   */
  public static byte[] readSecret(Path file, String what) {
    final byte[] secret;
    try {
      final PosixFileAttributeView posix =
          Files.getFileAttributeView(file, PosixFileAttributeView.class);
      if (posix != null) {
        final Set<PosixFilePermission> open = posix.readAttributes().permissions();
        open.retainAll(
            Set.of(
                PosixFilePermission.GROUP_READ,
                PosixFilePermission.GROUP_WRITE,
                PosixFilePermission.OTHERS_READ,
                PosixFilePermission.OTHERS_WRITE));
        if (!open.isEmpty()) {
          throw new IllegalArgumentException(
              what + " " + file + " can be read or written by others; run chmod 600 " + file);
        }
      }
      secret = Files.readAllBytes(file);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException(
          what
              + " "
              + file
              + " does not exist; make one with: head -c 32 /dev/urandom > "
              + file
              + " && chmod 600 "
              + file
              + ", and give every shard process the same file");
    } catch (IOException e) {
      throw new IllegalArgumentException(what + " " + file + " cannot be read: " + e, e);
    }
    if (secret.length < MIN_SECRET_BYTES) {
      throw new IllegalArgumentException(
          what
              + " "
              + file
              + " holds "
              + secret.length
              + " bytes, fewer than "
              + MIN_SECRET_BYTES
              + "; make one with: head -c 32 /dev/urandom > "
              + file);
    }
    return secret;
  }

  /**
   * A new MAC keyed with this key, null for {@link #none}: one per thread, it is not thread-safe.
   */
  Mac mac() {
    return key == null ? null : mac(key);
  }

  private static Mac mac(byte[] key) {
    try {
      final Mac mac = Mac.getInstance(ALGORITHM);
      mac.init(new SecretKeySpec(key, ALGORITHM));
      return mac;
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(ALGORITHM + " is not available in this JVM", e);
    }
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof FrameKey that
        && (key == null
            ? that.key == null
            : that.key != null && MessageDigest.isEqual(key, that.key));
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(key);
  }

  /** The first 4 bytes of SHA-256 of the key: enough to tell keys apart in a log, no more. */
  @Override
  public String toString() {
    if (key == null) {
      return "FrameKey[none]";
    }
    try {
      final byte[] digest = MessageDigest.getInstance("SHA-256").digest(key);
      return "FrameKey[" + HexFormat.of().formatHex(digest, 0, 4) + "]";
    } catch (GeneralSecurityException e) {
      return "FrameKey[?]";
    }
  }
}
