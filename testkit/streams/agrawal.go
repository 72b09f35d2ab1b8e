package streams

// Agrawal attributes, in the order they take in Event.F.
const (
	agSalary = iota
	agCommission
	agAge
	agElevel
	agCar
	agZipcode
	agHvalue
	agHyears
	agLoan
)

// agrawal draws the nine attributes as River does and labels them with the concept's
// classification function.
func (g *Generator) agrawal(e *Event, conceptB bool) bool {
	r := g.rng
	salary := 20_000 + 130_000*r.Float64()
	commission := 10_000 + 75_000*r.Float64()
	if salary >= 75_000 {
		commission = 0
	}
	zipcode := float64(r.IntN(9))
	e.F[agSalary] = salary
	e.F[agCommission] = commission
	e.F[agAge] = float64(20 + r.IntN(61))
	e.F[agElevel] = float64(r.IntN(5))
	e.F[agCar] = float64(1 + r.IntN(20))
	e.F[agZipcode] = zipcode
	e.F[agHvalue] = (9 - zipcode) * 100_000 * (0.5 + r.Float64())
	e.F[agHyears] = float64(1 + r.IntN(30))
	e.F[agLoan] = 500_000 * r.Float64()
	e.F[9] = r.Float64()
	f := g.cfg.Variant
	if conceptB {
		f = g.cfg.DriftVariant
	}
	return agrawalFuncs[f](&e.F)
}

func in(lo, x, hi float64) bool { return lo <= x && x <= hi }

// agrawalFuncs are the ten classification functions of Agrawal et al. (1993) as River
// and MOA define them (function 4 keeps their salary ranges of 200k..400k and
// 300k..500k, which no salary reaches). Each reports whether the label is 1. Functions 7
// and 9 are heavily imbalanced there too: about 2% and 0.2% of labels are 1.
var agrawalFuncs = [10]func(a *[10]float64) bool{
	func(a *[10]float64) bool {
		age := a[agAge]
		return age < 40 || 60 <= age
	},
	func(a *[10]float64) bool {
		age, salary := a[agAge], a[agSalary]
		switch {
		case age < 40:
			return in(50_000, salary, 100_000)
		case age < 60:
			return in(75_000, salary, 125_000)
		default:
			return in(25_000, salary, 75_000)
		}
	},
	func(a *[10]float64) bool {
		age, elevel := a[agAge], a[agElevel]
		switch {
		case age < 40:
			return elevel <= 1
		case age < 60:
			return 1 <= elevel && elevel <= 3
		default:
			return 2 <= elevel
		}
	},
	func(a *[10]float64) bool {
		age, elevel, salary := a[agAge], a[agElevel], a[agSalary]
		switch {
		case age < 40:
			if elevel <= 1 {
				return in(25_000, salary, 75_000)
			}
			return in(50_000, salary, 100_000)
		case age < 60:
			if 1 <= elevel && elevel <= 3 {
				return in(50_000, salary, 100_000)
			}
			return in(75_000, salary, 125_000)
		default:
			if 2 <= elevel {
				return in(50_000, salary, 100_000)
			}
			return in(25_000, salary, 75_000)
		}
	},
	func(a *[10]float64) bool {
		age, salary, loan := a[agAge], a[agSalary], a[agLoan]
		switch {
		case age < 40:
			if in(50_000, salary, 100_000) {
				return in(100_000, loan, 300_000)
			}
			return in(200_000, salary, 400_000)
		case age < 60:
			if in(75_000, salary, 125_000) {
				return in(200_000, loan, 400_000)
			}
			return in(300_000, salary, 500_000)
		default:
			if in(25_000, salary, 75_000) {
				return in(300_000, loan, 500_000)
			}
			return in(100_000, loan, 300_000)
		}
	},
	func(a *[10]float64) bool {
		age, total := a[agAge], a[agSalary]+a[agCommission]
		switch {
		case age < 40:
			return in(50_000, total, 100_000)
		case age < 60:
			return in(75_000, total, 125_000)
		default:
			return in(25_000, total, 75_000)
		}
	},
	func(a *[10]float64) bool {
		disposable := 2*(a[agSalary]+a[agCommission])/3 - a[agLoan]/5 - 20_000
		return disposable <= 1
	},
	func(a *[10]float64) bool {
		disposable := 2*(a[agSalary]+a[agCommission])/3 - 5_000*a[agElevel] - 20_000
		return disposable <= 1
	},
	func(a *[10]float64) bool {
		disposable := 2*(a[agSalary]+a[agCommission])/3 - 5_000*a[agElevel] - a[agLoan]/5 - 10_000
		return disposable <= 1
	},
	func(a *[10]float64) bool {
		var equity float64
		if a[agHyears] >= 20 {
			equity = a[agHvalue] * (a[agHyears] - 20) / 10
		}
		disposable := 2*(a[agSalary]+a[agCommission])/3 - 5_000*a[agElevel] + equity/5 - 10_000
		return disposable <= 1
	},
}
