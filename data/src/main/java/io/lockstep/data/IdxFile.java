package io.lockstep.data;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.GZIPInputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * An IDX file of unsigned bytes (the MNIST layout: a zero short, type 0x08, the number of
 * dimensions, big-endian int dimensions, then the data), raw or gzip-compressed, read through the
 * Hadoop {@link FileSystem} so {@code file://}, {@code hdfs://} and {@code s3a://} all work.
 *
 * @param dimensions the sizes of each dimension
 * @param data the bytes, row-major
 */
record IdxFile(int[] dimensions, byte[] data) {
  private static final int UNSIGNED_BYTE = 0x08;
  private static final int MAX_DIMENSIONS = 8;

  static IdxFile read(Path path, Configuration hadoop) {
    try {
      final FileSystem fs = path.getFileSystem(hadoop);
      try (InputStream raw = new BufferedInputStream(fs.open(path), 1 << 16)) {
        raw.mark(2);
        final boolean gzip = raw.read() == 0x1f && raw.read() == 0x8b;
        raw.reset();
        try (DataInputStream in =
            new DataInputStream(gzip ? new GZIPInputStream(raw, 1 << 16) : raw)) {
          return parse(in, path);
        }
      }
    } catch (java.io.FileNotFoundException e) {
      throw new DataException(path + ": no such file; check lockstep.data.dir", e);
    } catch (EOFException e) {
      throw new DataException(path + ": truncated IDX file; download it again", e);
    } catch (IOException e) {
      throw new DataException(path + ": cannot read (" + e.getMessage() + ")", e);
    }
  }

  private static IdxFile parse(DataInputStream in, Path path) throws IOException {
    final int zero = in.readUnsignedShort();
    final int type = in.readUnsignedByte();
    final int rank = in.readUnsignedByte();
    if (zero != 0 || type != UNSIGNED_BYTE || rank == 0 || rank > MAX_DIMENSIONS) {
      throw new DataException(
          path
              + ": not an unsigned-byte IDX file (header "
              + String.format("%04x %02x %02x", zero, type, rank)
              + "); expected MNIST-style images or labels");
    }
    final int[] dimensions = new int[rank];
    long length = 1;
    for (int i = 0; i < rank; i++) {
      dimensions[i] = in.readInt();
      if (dimensions[i] <= 0) {
        throw new DataException(path + ": dimension " + i + " is " + dimensions[i]);
      }
      length *= dimensions[i];
    }
    if (length > Integer.MAX_VALUE - 8) {
      throw new DataException(path + ": " + length + " bytes of data is too large for one array");
    }
    final byte[] data = new byte[(int) length];
    in.readFully(data);
    if (in.read() != -1) {
      throw new DataException(
          path + ": more data than its header declares; the file is corrupt, download it again");
    }
    return new IdxFile(dimensions, data);
  }
}
