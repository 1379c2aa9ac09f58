/** Powers of ten 1e-60 .. 1e59, indexed by exponent + 60 (float32 spans about 1e-45 .. 3.4e38). */
const POW10 = Array.from({ length: 120 }, (_, i) => Number(`1e${i - 60}`));
const pow10 = (exponent: number) => POW10[exponent + 60];

/**
 * The shortest decimal (at most 9 significant digits) that reads back as the same float32, e.g. 0.1
 * rather than 0.10000000149011612, formatted as JavaScript prints numbers. About 10x faster than
 * trying toPrecision(6..9), which matters for P x P matrices sent as JSON.
 */
export function formatFloat32(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return v === 0 ? '0' : String(v);
  const target = Math.abs(v);
  let exponent = Math.floor(Math.log10(target)); // of the leading digit
  let mantissa = Math.round(target / pow10(exponent - 8)); // 9 significant digits
  if (mantissa >= 1e9) {
    exponent++;
    mantissa = Math.round(target / pow10(exponent - 8));
  } else if (mantissa < 1e8) {
    exponent--;
    mantissa = Math.round(target / pow10(exponent - 8));
  }
  let power = exponent - 8; // value = mantissa * 10^power
  if (Math.fround(mantissa * pow10(power)) !== target) return String(Math.fround(v)); // not expected; stay exact
  // Drop digits while the shorter decimal still reads back as the same float32.
  for (;;) {
    const shorter = Math.round(mantissa / 10);
    if (shorter === 0 || Math.fround(shorter * pow10(power + 1)) !== target) break;
    mantissa = shorter;
    power++;
  }
  while (mantissa % 10 === 0) {
    mantissa /= 10;
    power++;
  }
  return (v < 0 ? '-' : '') + decimal(String(mantissa), power);
}

/** digits * 10^power as JavaScript writes numbers: fixed notation for 1e-6 <= x < 1e21, else exponent. */
function decimal(digits: string, power: number): string {
  const lead = power + digits.length - 1;
  if (lead < -6 || lead >= 21) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    return `${digits[0]}${fraction}e${lead >= 0 ? '+' : '-'}${Math.abs(lead)}`;
  }
  if (power >= 0) return digits + '0'.repeat(power);
  const point = digits.length + power;
  return point > 0 ? `${digits.slice(0, point)}.${digits.slice(point)}` : `0.${'0'.repeat(-point)}${digits}`;
}
