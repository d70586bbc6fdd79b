import CAlignerIntrinsics
import Foundation

// Go's math functions where the C library's differ in the last bit, so that PromQL answers equal
// Prometheus' (a Go program) bit for bit: Cephes' polynomials in Go's order of operations, and
// beyond 2^29 radians Go's Payne-Hanek reduction.
// Exp follows Go's amd64 assembly (FMA or not, as the CPU decides there too); elsewhere Go's Exp
// is another algorithm, so on arm64 answers that go through Exp may differ in the last bit.

private let pi4a = 7.85398125648498535156e-1
private let pi4b = 3.77489470793079817668e-8
private let pi4c = 2.69515142907905952645e-15
private let fourOverPi = 1.27323954473516268615107010698011489627567716592365
private let reduceThreshold = Double(1 << 29)

@inline(__always)
private func sinPolynomial(_ z: Double, _ zz: Double) -> Double {
    z + z * zz * ((((((1.58962301576546568060e-10 * zz) + -2.50507477628578072866e-8) * zz + 2.75573136213857245213e-6) * zz
        + -1.98412698295895385996e-4) * zz + 8.33333333332211858878e-3) * zz + -1.66666666666666307295e-1)
}

@inline(__always)
private func cosPolynomial(_ zz: Double) -> Double {
    1.0 - 0.5 * zz + zz * zz * ((((((-1.13585365213876817300e-11 * zz) + 2.08757008419747316778e-9) * zz
        + -2.75573141792967388112e-7) * zz + 2.48015872888517045348e-5) * zz + -1.38888888888730564116e-3) * zz
        + 4.16666666666665929218e-2)
}

/// 4/π in binary, 64 bits a word: 4/π = Σ words[i] × 2^(-64 i) (1217 bits; computed with
/// mpmath, the digits Go's trig_reduce.go holds).
private let fourOverPiBits: [UInt64] = [
    0x0000000000000001, 0x45f306dc9c882a53, 0xf84eafa3ea69bb81, 0xb6c52b3278872083, 0xfca2c757bd778ac3,
    0x6e48dc74849ba5c0, 0x0c925dd413a32439, 0xfc3bd63962534e7d, 0xd1046bea5d768909, 0xd338e04d68befc82,
    0x7323ac7306a673e9, 0x3908bf177bf25076, 0x3ff12fffbc0b301f, 0xde5e2316b414da3e, 0xda6cfd9e4f96136e,
    0x9e8c7ecd3cbfd45a, 0xea4f758fd7cbe2f6, 0x7a0e73ef14a525d4, 0xd7f6bf623f1aba10, 0xac06608df8f6d757,
]

/// Payne-Hanek, as Go's trigReduce: x (at least 2^29, finite) times 4/π with the few words of
/// 4/π that matter for x's exponent, in integer arithmetic; the top three bits of the product's
/// fraction part are the octant, the rest its fraction, times π/4.
private func payneHanek(_ x: Double) -> (j: UInt64, z: Double) {
    let bits = x.bitPattern
    let exponent = Int((bits >> 52) & 0x7FF) - 1023 - 52
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52)
    let digit = (exponent + 61) / 64, shift = UInt64((exponent + 61) % 64)
    func word(_ i: Int) -> UInt64 {
        (fourOverPiBits[i] << shift) | (fourOverPiBits[i + 1] >> (64 - shift))
    }
    let z0 = word(digit), z1 = word(digit + 1), z2 = word(digit + 2)
    let z2hi = z2.multipliedFullWidth(by: mantissa).high
    let (z1hi, z1lo) = z1.multipliedFullWidth(by: mantissa)
    let z0lo = z0 &* mantissa
    let (lo, carry) = z1lo.addingReportingOverflow(z2hi)
    var hi = z0lo &+ z1hi &+ (carry ? 1 : 0)
    var j = hi >> 61
    hi = hi << 3 | lo >> 61
    let lz = UInt64(hi.leadingZeroBitCount)
    let e = UInt64(1023) &- (lz + 1)
    hi = (hi << (lz + 1)) | (lo >> (64 - (lz + 1)))
    hi >>= 64 - 52
    hi |= e << 52
    var z = Double(bitPattern: hi)
    if j & 1 == 1 {
        j = (j + 1) & 7
        z -= 1
    }
    return (j, z * (Double.pi / 4))
}

/// The octant of `x` (non-negative) with odd octants moved up, and `x` reduced into it: with π/4
/// in three parts below 2^29, by Payne-Hanek above.
@inline(__always)
private func octant(_ x: Double) -> (j: UInt64, z: Double) {
    if x >= reduceThreshold { return payneHanek(x) }
    var j = UInt64(x * fourOverPi)
    var y = Double(j)
    if j & 1 == 1 {
        j += 1
        y += 1
    }
    return (j, ((x - y * pi4a) - y * pi4b) - y * pi4c)
}

func goSin(_ value: Double) -> Double {
    if value == 0 || value.isNaN { return value }
    if value.isInfinite { return .nan }
    var sign = value < 0
    var (j, z) = octant(abs(value))
    j &= 7
    if j > 3 {
        sign.toggle()
        j -= 4
    }
    let zz = z * z
    let y = (j == 1 || j == 2) ? cosPolynomial(zz) : sinPolynomial(z, zz)
    return sign ? -y : y
}

func goCos(_ value: Double) -> Double {
    if value.isNaN || value.isInfinite { return .nan }
    let x = abs(value)
    var (j, z) = octant(x)
    j &= 7
    var sign = false
    if j > 3 {
        j -= 4
        sign.toggle()
    }
    if j > 1 { sign.toggle() }
    let zz = z * z
    let y = (j == 1 || j == 2) ? sinPolynomial(z, zz) : cosPolynomial(zz)
    return sign ? -y : y
}

func goTan(_ value: Double) -> Double {
    if value == 0 || value.isNaN { return value }
    if value.isInfinite { return .nan }
    let (j, z) = octant(abs(value))
    let zz = z * z
    var y = z
    if zz > 1e-14 {
        y = z + z * (zz * ((-1.30936939181383777646e4 * zz + 1.15351664838587416140e6) * zz + -1.79565251976484877988e7)
            / ((((zz + 1.36812963470692954678e4) * zz + -1.32089234440210967447e6) * zz + 2.50083801823357915839e7) * zz
                + -5.38695755929454629881e7))
    }
    if j & 2 == 2 { y = -1 / y }
    return value < 0 ? -y : y
}

/// atan on [0, 0.66].
private func xatan(_ x: Double) -> Double {
    var z = x * x
    z = z * ((((-8.750608600031904122785e-01 * z + -1.615753718733365076637e+01) * z + -7.500855792314704667340e+01) * z
        + -1.228866684490136173410e+02) * z + -6.485021904942025371773e+01)
        / (((((z + 2.485846490142306297962e+01) * z + 1.650270098316988542046e+02) * z + 4.328810604912902668951e+02) * z
            + 4.853903996359136964868e+02) * z + 1.945506571482613964425e+02)
    return x * z + x
}

/// atan of a positive argument, reduced to [0, 0.66].
private func satan(_ x: Double) -> Double {
    let morebits = 6.123233995736765886130e-17  // π/2 = (π/2 as a Double) + morebits
    if x <= 0.66 { return xatan(x) }
    if x > 2.41421356237309504880 { return Double.pi / 2 - xatan(1 / x) + morebits }
    return Double.pi / 4 + xatan((x - 1) / (x + 1)) + 0.5 * morebits
}

func goAtan(_ x: Double) -> Double {
    if x == 0 { return x }
    return x > 0 ? satan(x) : -satan(-x)
}

func goAsin(_ value: Double) -> Double {
    if value == 0 { return value }
    var x = value, sign = false
    if x < 0 {
        x = -x
        sign = true
    }
    if x > 1 { return .nan }
    var t = (1 - x * x).squareRoot()
    t = x > 0.7 ? Double.pi / 2 - satan(t / x) : satan(x / t)
    return sign ? -t : t
}

func goAcos(_ x: Double) -> Double { Double.pi / 2 - goAsin(x) }

func goAtan2(_ y: Double, _ x: Double) -> Double {
    if y.isNaN || x.isNaN { return .nan }
    if y == 0 {
        return x >= 0 && x.sign == .plus ? Double(signOf: y, magnitudeOf: 0) : Double(signOf: y, magnitudeOf: .pi)
    }
    if x == 0 { return Double(signOf: y, magnitudeOf: .pi / 2) }
    if x.isInfinite {
        if x > 0 { return y.isInfinite ? Double(signOf: y, magnitudeOf: .pi / 4) : Double(signOf: y, magnitudeOf: 0) }
        return y.isInfinite ? Double(signOf: y, magnitudeOf: 2.35619449019234492884698253745962716314787704953132936573)
            : Double(signOf: y, magnitudeOf: .pi)
    }
    if y.isInfinite { return Double(signOf: y, magnitudeOf: .pi / 2) }
    let q = goAtan(y / x)
    if x < 0 { return q <= 0 ? q + .pi : q - .pi }
    return q
}

/// Go's math.Max: +Inf wins over NaN, NaN over any number, +0 over -0.
func goMax(_ a: Double, _ b: Double) -> Double {
    if a == .infinity || b == .infinity { return .infinity }
    if a.isNaN || b.isNaN { return .nan }
    if a == 0 && b == 0 { return a.sign == .minus ? b : a }
    return a > b ? a : b
}

/// Go's math.Min: -Inf wins over NaN, NaN over any number, -0 over +0.
func goMin(_ a: Double, _ b: Double) -> Double {
    if a == -.infinity || b == -.infinity { return -.infinity }
    if a.isNaN || b.isNaN { return .nan }
    if a == 0 && b == 0 { return a.sign == .minus ? a : b }
    return a < b ? a : b
}

/// Go's math.Log (fdlibm's algorithm, which Prometheus' answers carry to the last bit; the C
/// library's log is rounded differently in about one case in ten).
func goLog(_ x: Double) -> Double {
    if x.isNaN || x == .infinity { return x }
    if x < 0 { return .nan }
    if x == 0 { return -.infinity }
    let ln2Hi = 6.93147180369123816490e-01, ln2Lo = 1.90821492927058770002e-10
    let l1 = 6.666666666666735130e-01, l2 = 3.999999999940941908e-01, l3 = 2.857142874366239149e-01
    let l4 = 2.222219843214978396e-01, l5 = 1.818357216161805012e-01, l6 = 1.531383769920937332e-01
    let l7 = 1.479819860511658591e-01
    // Go's amd64 Log (assembly) reads the exponent from the bits as they are, without
    // normalizing a subnormal first: ln(5e-324) is -709.09 in Prometheus, not -744.44.
    let bits = x.bitPattern
    var ki = Int((bits >> 52) & 0x7FF) - 1022
    var f1 = Double(bitPattern: (bits & ~(0x7FF << 52)) | (0x3FE << 52))
    if f1 < 0.70710678118654752440 {
        f1 *= 2
        ki -= 1
    }
    let f = f1 - 1
    let k = Double(ki)
    let s = f / (2 + f)
    let s2 = s * s
    let s4 = s2 * s2
    let t1 = s2 * (l1 + s4 * (l3 + s4 * (l5 + s4 * l7)))
    let t2 = s4 * (l2 + s4 * (l4 + s4 * l6))
    let r = t1 + t2
    let hfsq = 0.5 * f * f
    return k * ln2Hi - ((hfsq - (s * (hfsq + r) + k * ln2Lo)) - f)
}

/// Go's math.Log2: exact for powers of two, else Log of the fraction over ln 2 plus the exponent.
func goLog2(_ x: Double) -> Double {
    let (frac, exp) = goFrexp(x)
    if frac == 0.5 { return Double(exp - 1) }
    return goLog(frac) * 1.44269504088896340735992468100189213742664595415298593 + Double(exp)
}

/// Go's math.Log10: Log times 1/ln 10.
func goLog10(_ x: Double) -> Double { goLog(x) * 0.434294481903251827651128918916605082294397005803666566114 }

/// Go's math.Frexp: `x = frac × 2^exp` with |frac| in [0.5, 1); 0, ±Inf and NaN as they are.
func goFrexp(_ x: Double) -> (Double, Int) {
    if x == 0 || x.isInfinite || x.isNaN { return (x, 0) }
    let e = Int(x.exponent) + 1
    return (Double(sign: x.sign, exponent: -1, significand: x.significand), e)
}

/// Whether Go's amd64 Exp takes its FMA path on this CPU (AVX and FMA present).
let goUsesFMA = aligner_cpu_has_fma() != 0

/// Go's math.Exp as its amd64 assembly computes it (Shibata's method, as in SLEEF): k = x/ln 2
/// rounded to nearest, the remainder reduced by ln 2 in two parts and divided by 16, a Taylor
/// polynomial, four squarings of (1 + r) - 1 through r(r + 2), then 2^k. With AVX and FMA the
/// reduction and the polynomial are fused, as Go does on such CPUs. A k of 1024 is +Inf, as
/// there (Go 1.19, which Debian's Prometheus 2.42 is built with).
func goExp(_ x: Double, fused: Bool = goUsesFMA) -> Double {
    if x.isNaN || x == .infinity { return x }
    if x == -.infinity { return 0 }
    if x > 7.09782712893384e+02 { return .infinity }
    let scaled = x * 1.4426950408889634073599246810018920
    // CVTSD2SL: the integer nearest (ties to even); out of Int32's range it is Int32.min.
    let rounded = scaled.rounded(.toNearestOrEven)
    let k = rounded >= -2147483648 && rounded <= 2147483647 ? Int32(rounded) : Int32.min
    let kd = Double(k)
    let ln2Upper = 0.69314718055966295651160180568695068359375
    let ln2Lower = 0.28235290563031577122588448175013436025525412068e-12
    let c2 = 1.6666666666666666667e-1, c3 = 4.1666666666666666667e-2, c4 = 8.3333333333333333333e-3
    let c5 = 1.3888888888888888889e-3, c6 = 1.9841269841269841270e-4, c7 = 2.4801587301587301587e-5
    var r: Double
    if fused {
        r = x.addingProduct(-kd, ln2Upper).addingProduct(-kd, ln2Lower) * 0.0625
        var p = c6.addingProduct(c7, r)
        p = c5.addingProduct(p, r)
        p = c4.addingProduct(p, r)
        p = c3.addingProduct(p, r)
        p = c2.addingProduct(p, r)
        p = 0.5.addingProduct(p, r)
        p = 1.0.addingProduct(p, r)
        r *= p
        r *= r + 2
        r *= r + 2
        r *= r + 2
        r = 1.0.addingProduct(r, r + 2)
    } else {
        r = x - ln2Upper * kd
        r -= ln2Lower * kd
        r *= 0.0625
        var p = c7 * r + c6
        p = p * r + c5
        p = p * r + c4
        p = p * r + c3
        p = p * r + c2
        p = p * r + 0.5
        p = p * r + 1.0
        r *= p
        for _ in 0..<4 { r *= 2 + r }
        r += 1
    }
    let biased = Int64(k) + 0x3FF
    if biased >= 0x7FF { return .infinity }
    if biased > 0 { return r * Double(bitPattern: UInt64(biased) << 52) }
    // A subnormal result: scaled by 2^(k + 1022), then by 2^-1022 (two roundings, as there).
    if biased < -52 { return 0 }
    return r * Double(bitPattern: UInt64(biased + 0x3FE) << 52) * 0x1p-1022
}

/// Go's math.Pow (pure Go on amd64): the special cases of IEEE 754 §9.2.1 in Go's order, then
/// x^frac(y) through Exp and Log and x^int(y) by repeated squaring of Frexp's fraction.
func goPow(_ x: Double, _ y: Double) -> Double {
    func isOddInt(_ v: Double) -> Bool {
        let (whole, fraction) = modf(v)
        return fraction == 0 && abs(whole) < 0x1p63 && Int64(whole) & 1 == 1
    }
    switch true {
    case y == 0 || x == 1: return 1
    case x.isNaN || y.isNaN: return .nan
    case x == 0:
        if y < 0 { return isOddInt(y) ? Double(signOf: x, magnitudeOf: .infinity) : .infinity }
        if y > 0 { return isOddInt(y) ? x : 0 }
    case y.isInfinite:
        if x == -1 { return 1 }
        return (abs(x) < 1) == (y > 0) ? 0 : .infinity
    case x.isInfinite:
        if x < 0 { return goPow(1 / x, -y) }
        if y < 0 { return 0 }
        if y > 0 { return .infinity }
    case y == 0.5: return x.squareRoot()
    case y == -0.5: return 1 / x.squareRoot()
    default: break
    }
    var (yi, yf) = modf(abs(y))
    if yf != 0 && x < 0 { return .nan }
    if yi >= 0x1p63 {
        if x == -1 { return 1 }
        return (abs(x) < 1) == (y > 0) ? 0 : .infinity
    }
    var a1 = 1.0
    var ae = 0
    if yf != 0 {
        if yf > 0.5 {
            yf -= 1
            yi += 1
        }
        a1 = goExp(yf * goLog(x))
    }
    var (x1, xe) = goFrexp(x)
    var i = Int64(yi)
    while i != 0 {
        if xe < -(1 << 12) || (1 << 12) < xe {
            ae += xe
            break
        }
        if i & 1 == 1 {
            a1 *= x1
            ae += xe
        }
        x1 *= x1
        xe <<= 1
        if x1 < 0.5 {
            x1 += x1
            xe -= 1
        }
        i >>= 1
    }
    if y < 0 {
        a1 = 1 / a1
        ae = -ae
    }
    return scalbn(a1, ae)
}

/// Go 1.19's math.Sinh: Hart & Cheney's rational function below 0.5, Exp above (e^-x as 1/e^x;
/// later Go versions call Exp(-x), which rounds differently).
func goSinh(_ value: Double) -> Double {
    // Negated only when below zero, as Go does: -0 stays -0.
    let x = value < 0 ? -value : value
    var t: Double
    if x > 21 {
        t = goExp(x) * 0.5
    } else if x > 0.5 {
        let ex = goExp(x)
        t = (ex - 1 / ex) * 0.5
    } else {
        let sq = x * x
        t = (((-0.2630563213397497062819489e+2 * sq + -0.2894211355989563807284660366e+4) * sq
            + -0.8991272022039509355398013511e+5) * sq + -0.6307673640497716991184787251e+6) * x
        t /= ((sq + -0.173678953558233699533450911e+3) * sq + 0.1521517378790019070696485176e+5) * sq
            + -0.6307673640497716991212077277e+6
    }
    return value < 0 ? -t : t
}

/// Go 1.19's math.Cosh.
func goCosh(_ value: Double) -> Double {
    let x = abs(value)
    if x > 21 { return goExp(x) * 0.5 }
    let ex = goExp(x)
    return (ex + 1 / ex) * 0.5
}

/// Go's math.Tanh (Cephes): ±1 past log(2^127)/2, 1 - 2/(e^2x + 1) from 0.625, else
/// x + x³P(x²)/Q(x²).
func goTanh(_ x: Double) -> Double {
    let maxLog = 8.8029691931113054295988e+01
    var z = abs(x)
    if z > 0.5 * maxLog { return x < 0 ? -1 : 1 }
    if z >= 0.625 {
        let s = goExp(2 * z)
        z = 1 - 2 / (s + 1)
        return x < 0 ? -z : z
    }
    if x == 0 { return x }
    let s = x * x
    return x + x * s * ((-9.64399179425052238628e-1 * s + -9.92877231001918586564e1) * s + -1.61468768441708447952e3)
        / (((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s + 4.84406305325125486048e3)
}

/// Go's math.Log1p (FreeBSD's s_log1p.c): log(1 + x) from a reduced 1 + x with a correction
/// term for the rounding of 1 + x, and Log's polynomial.
func goLog1p(_ x: Double) -> Double {
    if x < -1 || x.isNaN { return .nan }
    if x == -1 { return -.infinity }
    if x == .infinity { return .infinity }
    let ln2Hi = 6.93147180369123816490e-01, ln2Lo = 1.90821492927058770002e-10
    let absx = abs(x)
    var f = 0.0
    var iu: UInt64 = 0
    var k = 1
    if absx < 4.142135623730950488017e-01 {
        if absx < 0x1p-29 {
            if absx < 0x1p-54 { return x }
            return x - x * x * 0.5
        }
        if x > -2.928932188134524755992e-01 {
            k = 0
            f = x
            iu = 1
        }
    }
    var c = 0.0
    if k != 0 {
        var u: Double
        if absx < 0x1p53 {
            u = 1.0 + x
            iu = u.bitPattern
            k = Int(iu >> 52) - 1023
            c = k > 0 ? 1.0 - (u - x) : x - (u - 1.0)
            c /= u
        } else {
            u = x
            iu = u.bitPattern
            k = Int(iu >> 52) - 1023
            c = 0
        }
        iu &= 0x000f_ffff_ffff_ffff
        if iu < 0x0006_a09e_667f_3bcd {
            u = Double(bitPattern: iu | 0x3ff0_0000_0000_0000)
        } else {
            k += 1
            u = Double(bitPattern: iu | 0x3fe0_0000_0000_0000)
            iu = (0x0010_0000_0000_0000 - iu) >> 2
        }
        f = u - 1.0
    }
    let hfsq = 0.5 * f * f
    let kd = Double(k)
    if iu == 0 {
        if f == 0 {
            if k == 0 { return 0 }
            c += kd * ln2Lo
            return kd * ln2Hi + c
        }
        let r = hfsq * (1.0 - 0.66666666666666666 * f)
        if k == 0 { return f - r }
        return kd * ln2Hi - ((r - (kd * ln2Lo + c)) - f)
    }
    let s = f / (2.0 + f)
    let z = s * s
    let r = z * (6.666666666666735130e-01 + z * (3.999999999940941908e-01 + z * (2.857142874366239149e-01
        + z * (2.222219843214978396e-01 + z * (1.818357216161805012e-01 + z * (1.531383769920937332e-01
        + z * 1.479819860511658591e-01))))))
    if k == 0 { return f - (hfsq - s * (hfsq + r)) }
    return kd * ln2Hi - ((hfsq - (s * (hfsq + r) + (kd * ln2Lo + c))) - f)
}

private let goLn2 = 6.93147180559945286227e-01

/// Go's math.Asinh (FreeBSD's s_asinh.c).
func goAsinh(_ value: Double) -> Double {
    if value.isNaN || value.isInfinite { return value }
    let x = value < 0 ? -value : value
    let t: Double
    if x > 0x1p28 {
        t = goLog(x) + goLn2
    } else if x > 2 {
        t = goLog(2 * x + 1 / ((x * x + 1).squareRoot() + x))
    } else if x < 0x1p-28 {
        t = x
    } else {
        t = goLog1p(x + x * x / (1 + (1 + x * x).squareRoot()))
    }
    return value < 0 ? -t : t
}

/// Go's math.Acosh (FreeBSD's e_acosh.c).
func goAcosh(_ x: Double) -> Double {
    if x < 1 || x.isNaN { return .nan }
    if x == 1 { return 0 }
    if x >= 0x1p28 { return goLog(x) + goLn2 }
    if x > 2 { return goLog(2 * x - 1 / (x + (x * x - 1).squareRoot())) }
    let t = x - 1
    return goLog1p(t + (2 * t + t * t).squareRoot())
}

/// Go's math.Atanh (FreeBSD's e_atanh.c), through Log1p.
func goAtanh(_ value: Double) -> Double {
    if value < -1 || value > 1 || value.isNaN { return .nan }
    if value == 1 { return .infinity }
    if value == -1 { return -.infinity }
    let x = value < 0 ? -value : value
    var t: Double
    if x < 0x1p-28 {
        t = x
    } else if x < 0.5 {
        t = x + x
        t = 0.5 * goLog1p(t + t * x / (1 - x))
    } else {
        t = 0.5 * goLog1p((x + x) / (1 - x))
    }
    return value < 0 ? -t : t
}
