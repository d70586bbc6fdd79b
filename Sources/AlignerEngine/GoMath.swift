import Foundation

// Go's math functions where the C library's differ in the last bit, so that PromQL answers equal
// Prometheus' (a Go program) bit for bit: Cephes' polynomials in Go's order of operations. Beyond
// 2^29 radians Go reduces arguments with Payne-Hanek; there the C library's functions are used.
// (Go's Exp, and so Pow and the hyperbolic functions, has an assembly version on amd64 that uses
// FMA when the CPU has it: those are left to the C library.)

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

/// The octant of `x` (non-negative, below 2^29) with odd octants moved up, and `x` reduced
/// into it with π/4 in three parts.
@inline(__always)
private func octant(_ x: Double) -> (j: UInt64, z: Double) {
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
    if abs(value) >= reduceThreshold { return Foundation.sin(value) }
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
    if x >= reduceThreshold { return Foundation.cos(value) }
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
    if abs(value) >= reduceThreshold { return Foundation.tan(value) }
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
