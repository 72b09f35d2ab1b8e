// Package stat holds the statistical distributions and test statistics shared
// by the drift detectors. Functions are pure and do not allocate.
package stat

import "math"

// KSStatistic returns the two-sample Kolmogorov-Smirnov statistic
// D = sup |F_a - F_b| of two samples sorted in ascending order, with ties
// handled as scipy.stats.ks_2samp does (CDFs compared right-continuously).
func KSStatistic(a, b []float64) float64 {
	na, nb := float64(len(a)), float64(len(b))
	i, j := 0, 0
	d := 0.0
	for i < len(a) && j < len(b) {
		v := min(a[i], b[j])
		for i < len(a) && a[i] <= v {
			i++
		}
		for j < len(b) && b[j] <= v {
			j++
		}
		d = max(d, math.Abs(float64(i)/na-float64(j)/nb))
	}
	return d
}

// KSExactPValueEqual returns the exact two-sided p-value P(D >= d) of the
// two-sample KS test for two samples of equal size n, as scipy's
// ks_2samp(method="exact") computes it.
func KSExactPValueEqual(d float64, n int) float64 {
	h := int(math.RoundToEven(d * float64(n)))
	if h <= 0 {
		return 1
	}
	// P = 2·A0·(1 - A1·(1 - A2·(...))), evaluated from the innermost term.
	p := 0.0
	for k := n / h; k >= 0; k-- {
		term := 1.0
		for j := 0; j < h; j++ {
			term = float64(n-k*h-j) * term / float64(n+k*h+j+1)
		}
		p = term * (1 - p)
	}
	return min(max(2*p, 0), 1)
}

// KolmogorovSF is the survival function of the Kolmogorov distribution,
// Q(λ) = 2 Σ_{k≥1} (-1)^{k-1} exp(-2k²λ²).
func KolmogorovSF(lambda float64) float64 {
	if lambda < 0.2 {
		return 1
	}
	sum, sign := 0.0, 1.0
	for k := 1; k <= 100; k++ {
		term := math.Exp(-2 * float64(k*k) * lambda * lambda)
		sum += sign * term
		if term < 1e-16*sum {
			break
		}
		sign = -sign
	}
	return min(max(2*sum, 0), 1)
}

// KSAsymptoticPValue returns the asymptotic two-sided p-value of a two-sample
// KS statistic d for sample sizes n and m, with Stephens' small-sample
// correction.
func KSAsymptoticPValue(d float64, n, m float64) float64 {
	en := math.Sqrt(n * m / (n + m))
	return KolmogorovSF((en + 0.12 + 0.11/en) * d)
}

// ChiSquareSF is the survival function P(X > x) of the chi-square
// distribution with df degrees of freedom.
func ChiSquareSF(x, df float64) float64 {
	if x <= 0 {
		return 1
	}
	return regularizedGammaQ(df/2, x/2)
}

// regularizedGammaQ is Q(a, x) = Γ(a, x)/Γ(a), by series for x < a+1 and by
// continued fraction otherwise (Numerical Recipes, §6.2).
func regularizedGammaQ(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, del, ap := 1/a, 1/a, a
		for range 1000 {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i <= 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}
