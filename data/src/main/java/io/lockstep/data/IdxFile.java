package io.lockstep.data;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;

/**
 * An IDX file of unsigned bytes (the MNIST layout: a zero short, type 0x08, the number of
 * dimensions, big-endian int dimensions, then the data), raw or gzip-compressed, read through the
 * Hadoop {@link FileSystem} so {@code file://}, {@code hdfs://} and {@code s3a://} all work.
 *
 * <p>A damaged file is refused with what is wrong with it: empty, truncated (how many bytes its
 * header declares and how many were there, uncompressed), damaged gzip data, more data than the
 * header declares, or not IDX at all (what it looks like instead: a JPEG, an HTML page, ...).
 *
 * @param dimensions the sizes of each dimension
 * @param data the bytes, row-major
 */
record IdxFile(int[] dimensions, byte[] data) {
  private static final int UNSIGNED_BYTE = 0x08;
  private static final int MAX_DIMENSIONS = 8;
  private static final int MAGIC_BYTES = 4;

  static IdxFile read(DataFile file, Configuration hadoop) {
    try (InputStream raw = new BufferedInputStream(file.open(hadoop), 1 << 16)) {
      raw.mark(2);
      final boolean gzip = raw.read() == 0x1f && raw.read() == 0x8b;
      raw.reset();
      return new Reader(file, gzip).read(raw);
    } catch (IOException e) {
      throw file.unreadable(e);
    }
  }

  /** One file's reading: how far it got, to say where a damaged file ends. */
  private static final class Reader {
    private final DataFile file;
    private final boolean gzip;
    private long headerBytes = -1;
    private long expectedBytes = -1;

    Reader(DataFile file, boolean gzip) {
      this.file = file;
      this.gzip = gzip;
    }

    IdxFile read(InputStream raw) throws IOException {
      final CountingInputStream in = new CountingInputStream(gzip ? gunzip(raw) : raw);
      try {
        return parse(in);
      } catch (EOFException e) {
        // GZIPInputStream's "Unexpected end of ZLIB input stream": the compressed file is cut short
        throw truncated(in.count(), e);
      } catch (ZipException e) {
        throw file.damaged(
            "damaged gzip data after "
                + DataFile.count(in.count())
                + " bytes of IDX ("
                + e.getMessage()
                + ")",
            e);
      }
    }

    private InputStream gunzip(InputStream raw) throws IOException {
      try {
        return new GZIPInputStream(raw, 1 << 16);
      } catch (EOFException e) {
        throw file.damaged("truncated: the file ends inside its gzip header", e);
      } catch (ZipException e) {
        throw file.damaged("a damaged gzip header (" + e.getMessage() + ")", e);
      }
    }

    private IdxFile parse(CountingInputStream in) throws IOException {
      final byte[] magic = in.readNBytes(MAGIC_BYTES);
      if (magic.length < MAGIC_BYTES) {
        throw truncated(magic.length, null);
      }
      final int zero = ((magic[0] & 0xff) << 8) | (magic[1] & 0xff);
      final int type = magic[2] & 0xff;
      final int rank = magic[3] & 0xff;
      if (zero != 0 || type != UNSIGNED_BYTE || rank == 0 || rank > MAX_DIMENSIONS) {
        throw file.damaged(
            String.format(
                "not an IDX file of unsigned bytes (it starts %02x %02x %02x %02x%s)",
                magic[0], magic[1], magic[2], magic[3], looksLike(magic, in)),
            null);
      }
      headerBytes = MAGIC_BYTES + 4L * rank;
      final byte[] header = in.readNBytes(4 * rank);
      if (header.length < 4 * rank) {
        throw truncated(in.count(), null);
      }
      final ByteBuffer sizes = ByteBuffer.wrap(header);
      final int[] dimensions = new int[rank];
      long length = 1;
      for (int i = 0; i < rank; i++) {
        dimensions[i] = sizes.getInt();
        if (dimensions[i] <= 0) {
          throw file.damaged("its header gives dimension " + i + " as " + dimensions[i], null);
        }
        length *= dimensions[i];
        if (length > Integer.MAX_VALUE - 8) {
          throw file.damaged(
              "its header declares more than " + DataFile.count(length) + " bytes of data", null);
        }
      }
      expectedBytes = headerBytes + length;
      // readNBytes grows its buffer as bytes arrive: a damaged header's size is never allocated
      final byte[] data = in.readNBytes((int) length);
      if (data.length < length) {
        throw truncated(in.count(), null);
      }
      if (in.read() != -1) {
        throw file.damaged(
            "more data than its header declares (" + DataFile.count(expectedBytes) + " bytes)",
            null);
      }
      return new IdxFile(dimensions, data);
    }

    private DataException truncated(long read, Throwable cause) {
      final String uncompressed = gzip ? " uncompressed" : "";
      if (expectedBytes < 0) {
        return file.damaged(
            "truncated: "
                + DataFile.count(read)
                + " bytes"
                + uncompressed
                + ", shorter than its IDX header"
                + (headerBytes < 0 ? "" : " (" + DataFile.count(headerBytes) + " bytes)"),
            cause);
      }
      if (read >= expectedBytes) {
        return file.damaged(
            "truncated: the gzip stream ends before its trailer, after all "
                + DataFile.count(expectedBytes)
                + " bytes of IDX",
            cause);
      }
      return file.damaged(
          "truncated: "
              + DataFile.count(expectedBytes)
              + " bytes expected"
              + uncompressed
              + ", "
              + DataFile.count(read)
              + " read",
          cause);
    }
  }

  /**
   * What a file that is not IDX looks like, from its first bytes and up to 60 more: a common mix-up
   * (an image, an archive, an HTML page saved by a failed download), or nothing.
   */
  private static String looksLike(byte[] start, InputStream rest) {
    final int a = start[0] & 0xff;
    final int b = start[1] & 0xff;
    if (a == 0xff && b == 0xd8) {
      return ": a JPEG image";
    }
    if (a == 0x89 && b == 'P' && start[2] == 'N' && start[3] == 'G') {
      return ": a PNG image";
    }
    if (a == 'P' && b == 'K') {
      return ": a zip archive";
    }
    if (a == 0x1f && b == 0x8b) {
      return ": gzip-compressed twice";
    }
    byte[] more;
    try {
      more = rest.readNBytes(60);
    } catch (IOException e) {
      more = new byte[0];
    }
    final String text =
        (new String(start, StandardCharsets.ISO_8859_1)
                + new String(more, StandardCharsets.ISO_8859_1))
            .stripLeading()
            .toLowerCase(Locale.ROOT);
    if (text.startsWith("<!doctype html") || text.startsWith("<html")) {
      return ": an HTML page (a download that failed?)";
    }
    return text.startsWith("<") ? ": XML or HTML text" : "";
  }

  /** Counts the bytes read through it. */
  private static final class CountingInputStream extends FilterInputStream {
    private long count;

    CountingInputStream(InputStream in) {
      super(in);
    }

    long count() {
      return count;
    }

    @Override
    public int read() throws IOException {
      final int b = super.read();
      if (b >= 0) {
        count++;
      }
      return b;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
      final int n = super.read(buffer, offset, length);
      if (n > 0) {
        count += n;
      }
      return n;
    }

    @Override
    public long skip(long n) throws IOException {
      final long skipped = super.skip(n);
      count += skipped;
      return skipped;
    }

    @Override
    public boolean markSupported() {
      return false;
    }
  }
}
