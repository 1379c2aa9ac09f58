/**
 * The NumPy .npy format 1.0 header for a little-endian float32 matrix: magic, version, header length,
 * then a Python dict literal padded with spaces to a multiple of 64 bytes and ended by a newline.
 * The data that follows is the matrix row-major; numpy.load opens it as is.
 */
export function npyHeader(rows: number, columns: number): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${columns}), }`;
  const prefixLength = 10; // 6 magic + 2 version + 2 header length
  const total = Math.ceil((prefixLength + dict.length + 1) / 64) * 64;
  const header = Buffer.alloc(total, 0x20);
  header.write('\x93NUMPY', 0, 'latin1');
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(total - prefixLength, 8);
  header.write(dict, prefixLength, 'latin1');
  header[total - 1] = 0x0a;
  return header;
}
